"""benchmarks/: every script runs on a tiny budget and writes valid JSON; the README's
results table is exactly what the renderer makes of benchmarks/results/*.json."""
import json
import math
import re

import pytest
import torch

import os

from benchmarks import (catalog, course, grading, hinton, hinton_consistent, hinton_mlp_teacher,
                        hinton_variants, kd_cost, migrate, render, threads, throughput)
from benchmarks import _common
from benchmarks._common import RESULTS, pick, vs_paper

MODULES = {"hinton": hinton, "hinton_mlp_teacher": hinton_mlp_teacher,
           "hinton_consistent": hinton_consistent, "hinton_variants": hinton_variants,
           "kd_cost": kd_cost, "throughput": throughput, "threads": threads, "course": course,
           "grading": grading}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Run every benchmark once on the tiny budget into a temporary folder (one thread:
    the sizes are tiny, and a second thread only waits when other work shares the cores)."""
    out = tmp_path_factory.mktemp("results")
    threads, cache = torch.get_num_threads(), os.environ.get("KDLAB_CACHE")
    # a fresh cache: the MLP teacher and the views' logits are made here, not read
    os.environ["KDLAB_CACHE"] = str(out / "cache")
    torch.set_num_threads(1)
    try:
        for name in catalog.names("all"):
            MODULES[name].run("tiny", out)
    finally:
        torch.set_num_threads(threads)
        if cache is None:
            os.environ.pop("KDLAB_CACHE", None)
        else:
            os.environ["KDLAB_CACHE"] = cache
    return out


def _read(folder, name):
    return json.loads((folder / f"{name}.json").read_text())


@pytest.mark.parametrize("name", catalog.names("all"))
def test_writes_json_with_conditions(tiny, name):
    d = _read(tiny, name)
    assert d["benchmark"] == name and d["budget"] == "tiny"
    assert d["settings"] and d["results"]
    assert set(d["env"]) >= {"torch", "threads", "machine", "cpu_model", "date"}
    assert d["env"]["cpu_model"]  # same-seed results differ between CPUs
    # ...and one model string covers CPU kinds 2x apart: torch's capability and the flags
    cap = torch.backends.cpu.get_cpu_capability()
    assert d["env"]["cpu_capability"] == cap
    assert d["env"]["cpu_flags"] == _common.cpu_flags()
    assert f"torch capability {cap}; flags " in render._conditions(name, d)
    assert d["env"]["torch"] == torch.__version__ and d["env"]["threads"] == 1
    assert len(d["load"]["start"]) == 3 and len(d["load"]["end"]) == 3
    assert d["load_note"].startswith("machine ")
    assert d["wall_seconds"] >= 0


def test_hinton_results(tiny):
    d = _read(tiny, "hinton")
    r, s = d["results"], d["settings"]
    assert 0 <= r["teacher_errors"] <= s["n_test"]
    for name in ("labels", "soft"):
        assert len(r[name]["errors"]) == len(s["seeds"]) == r[name]["n_seeds"]
        assert r[name]["mean"] == sum(r[name]["errors"]) / len(r[name]["errors"])
        for q in r[name]["runs"]:
            assert len(q["val_errors"]) == s["epochs"]
            assert q["errors"] == q["val_errors"][-1]  # the final count is the last epoch's
    o = r["omit3"]["runs"][0]
    assert o["n_transfer"] < s["n_train"]  # the 3s were left out of the transfer set
    assert o["before"]["n_3s"] > 0 and 0 <= o["bias"] <= 10
    assert o["before"]["errors_on_3s"] <= o["before"]["errors"]
    assert o["train_errors_after"] <= o["train_errors_before"]  # the bias is fitted on train
    assert r["omit3"]["after"]["mean"] == o["after"]["errors"]
    assert not (tiny / "hinton.partial").exists()


def test_hinton_mlp_teacher_results(tiny, tmp_path, monkeypatch):
    d = _read(tiny, "hinton_mlp_teacher")
    r, s = d["results"], d["settings"]
    t = r["teacher"]
    assert t["source"] == "trained" and len(t["val_errors"]) == s["teacher"]["epochs"]
    assert t["errors"] == t["val_errors"][-1]  # evaluated in eval mode, as after the last epoch
    assert t["within_goal"] == (t["errors"] <= hinton.PAPER["teacher_errors"])
    assert t["max_row_norm"] <= s["teacher"]["max_norm"] + 1e-4  # the constraint held
    assert r["seeds"] == s["students"]["seeds"] and len(r["errors"]) == len(r["seeds"])
    assert r["errors"] == [q["errors"] for q in r["student"]["runs"]]
    assert all(q["errors"] == q["val_errors"][-1] for q in r["student"]["runs"])
    # a second run reuses the cached checkpoint: the same teacher, the same students
    monkeypatch.setenv("KDLAB_CACHE", str(tiny / "cache"))
    again = hinton_mlp_teacher.run("tiny", tmp_path)
    assert again["teacher"]["source"] == "cache"
    assert again["teacher"]["errors"] == t["errors"] and again["errors"] == r["errors"]


def test_hinton_mlp_teacher_epochs_option(tmp_path, monkeypatch):
    """--teacher-epochs trains (and caches) the teacher that long and records it; < 1 is refused."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    r = hinton_mlp_teacher.run("tiny", tmp_path, seeds=[0], teacher_epochs=2)
    d = _read(tmp_path, "hinton_mlp_teacher")
    assert d["settings"]["teacher"]["epochs"] == 2 and len(r["teacher"]["val_errors"]) == 2
    assert "hinton-mlp-teacher" in r["teacher"]["checkpoint"]
    with pytest.raises(ValueError, match="teacher_epochs must be >= 1, got 0"):
        hinton_mlp_teacher.run("tiny", tmp_path, teacher_epochs=0)
    sgd = hinton_mlp_teacher.run("tiny", tmp_path / "sgd", seeds=[0], optimizer="sgd")
    s = _read(tmp_path / "sgd", "hinton_mlp_teacher")["settings"]["teacher"]
    assert (s["optimizer"], s["momentum"]) == ("SGD", 0.9) and sgd["teacher"]["source"] == "trained"
    assert sgd["teacher"]["checkpoint"] != r["teacher"]["checkpoint"]  # its own cache entry
    with pytest.raises(ValueError, match="optimizer must be one of"):
        hinton_mlp_teacher.run("tiny", tmp_path, optimizer="rmsprop")


def test_hinton_consistent_results(tiny):
    d = _read(tiny, "hinton_consistent")
    r, s = d["results"], d["settings"]
    assert r["view_logits"]["teacher_passes"] == s["views"] * s["n_train"]
    assert r["seeds"] == s["seeds"] and r["errors"] == [q["errors"] for q in r["kd"]["runs"]]
    assert r["within_goal_errors"] == (r["kd"]["mean"] <= hinton_consistent.GOAL_ERRORS)
    assert [q["views"] for q in r["k_curve"]] == s["k_curve"]
    assert [q["epochs"] for q in r["epochs_curve"]] == s["epochs_curve"]
    el = r["kd_elastic"]
    assert [q["seed"] for q in el["runs"]] == s["elastic_seeds"]
    assert el["errors"] == [q["errors"] for q in el["runs"]]
    assert el["within_goal_errors"] == (el["mean"] <= hinton_consistent.GOAL_ERRORS)
    assert r["elastic_view_logits"]["path"] != r["view_logits"]["path"]
    assert r["elastic_view_logits"]["teacher_passes"] == s["views"] * s["n_train"]
    for q in r["kd"]["runs"] + r["labels"]["runs"] + r["k_curve"] + r["epochs_curve"] + el["runs"]:
        assert len(q["val_errors"]) == q["epochs"] and q["errors"] == q["val_errors"][-1]
    c = r["epoch_cost"]
    want = [v / k for v, k in zip(c["seconds"]["views"], c["seconds"]["cached"])]
    assert c["ratio_by_round"] == pytest.approx(want, rel=2e-3)
    assert c["within_goal"] == (sorted(want)[len(want) // 2] <= hinton_consistent.GOAL_EPOCH_RATIO)
    assert (tiny / "hinton_consistent.png").stat().st_size > 10_000  # the figure of the curves
    rows = hinton_consistent.rows(d)
    assert rows[0][2].startswith(f"{r['kd']['mean']:.0f}") and "views ÷ cached" not in rows[-2][2]
    assert "elastic" in rows[-1][0] and rows[-1][2].startswith(f"{el['mean']:.0f}")
    assert f"elastic views: {s['elastic']}" in hinton_consistent.conditions(d)


def test_threads_times_each_setting(tiny):
    d = _read(tiny, "threads")
    r, s = d["results"], d["settings"]
    assert [(q["busy"], q["threads"]) for q in r["runs"]] == [
        (b, n) for b in s["busy"] for n in s["threads"]]
    for q in r["runs"]:
        assert len(q["seconds"]) == s["repeats"] and all(t > 0 for t in q["seconds"])
    med = {(q["busy"], q["threads"]): q["median_seconds"] for q in r["runs"]}
    assert r["idle_two_over_one"] == pytest.approx(med[(0, 2)] / med[(0, 1)], rel=2e-3)
    assert r["kdlab_choice_without_env"] >= 1
    assert "2 threads vs 1" in threads.rows(d)[0][0]


def test_load_note_sees_work_that_joined_during_the_run():
    from benchmarks._common import load_note
    assert load_note([0.1, 0, 0], [1.2, 0, 0], threads=1).startswith("machine quiet")
    assert load_note([0.1, 0, 0], [2.9, 0, 0], threads=1).startswith("machine shared")
    assert load_note([1.5, 0, 0], [1.0, 0, 0], threads=1).startswith("machine shared")


def test_teacher_verdict_follows_the_numbers():
    mlp, verdict = {"mean": 70.0, "std": 2.0}, hinton_mlp_teacher._teacher_verdict
    assert "support the hypothesis" in verdict(mlp, {"mean": 91.7, "std": 2.1})
    assert "do not support" in verdict(mlp, {"mean": 72.0, "std": 2.1})
    assert "contradict" in verdict(mlp, {"mean": 60.0, "std": 2.1})


def test_grading_benchmark_grades_both_ways(tiny):
    d = _read(tiny, "grading")
    for lab, v in d["results"].items():
        for mode in ("sandbox", "no_sandbox"):
            (run,) = v["runs"][mode]
            assert run["points"] == run["max_points"] > 0, run["failures"]
            assert run["wall_seconds"] > run["seconds_per_notebook"] * 0.5 > 0
        assert v["sandbox_cost"] == round(v["runs"]["sandbox"][0]["wall_seconds"]
                                          / v["runs"]["no_sandbox"][0]["wall_seconds"] - 1, 3)
    assert "Grading 1 submissions of 01_softmax_temperature" in render.render(tiny)


def test_hinton_variants_change_one_setting_each(tiny):
    d = _read(tiny, "hinton_variants")
    s, r = d["settings"], d["results"]
    assert list(r) == list(hinton_variants.VARIANTS)
    assert r["as in hinton.json"]["change"] == {}
    for name, v in r.items():
        assert len(v["change"]) <= 1 and 0 <= v["errors"] <= s["baseline"]["n_test"]
        epochs = s["baseline"]["epochs"] * (2 if name == "epochs x2" else 1)
        assert len(v["val_errors"]) == epochs
    assert r["alpha 1 (soft targets only)"]["change"] == {"alpha": 1.0}
    assert r["batch / 2"]["change"] == {"batch_size": s["baseline"]["batch_size"] // 2}


def test_kd_cost_results(tiny):
    r = _read(tiny, "kd_cost")["results"]
    v = r["TinyCNN"]
    for mode in kd_cost.MODES:
        assert v[f"{mode}_seconds"] > 0
    a = v["all_seconds"]
    for mode in ("cached", "live"):  # each round's ratio pairs epochs of that same round
        want = [t / lab for t, lab in zip(a[mode], a["labels"])]
        assert v[f"{mode}_over_labels_by_round"] == pytest.approx(want, rel=2e-3)
        assert math.isclose(v[f"{mode}_over_labels"],
                            sorted(want)[len(want) // 2] if len(want) % 2 else
                            sum(sorted(want)[len(want) // 2 - 1:len(want) // 2 + 1]) / 2,
                            rel_tol=2e-3)
    if abs(v["cached_over_labels"] - kd_cost.GOAL) > 0.002:  # the ratio is rounded to 3 digits
        assert v["cached_within_goal"] == (v["cached_over_labels"] < kd_cost.GOAL)


def test_paired_ratios_are_per_round_not_extremes():
    a = {"labels": [4.0, 2.0, 3.0], "cached": [4.4, 2.0, 2.7], "live": [8.0, 8.0, 9.0]}
    assert kd_cost.paired(a, "cached") == pytest.approx([1.1, 1.0, 0.9])
    assert kd_cost.paired(a, "live") == pytest.approx([2.0, 4.0, 3.0])
    with pytest.raises(ValueError, match="must pair"):
        kd_cost.paired({"labels": [1.0], "cached": [1.0, 2.0]}, "cached")
    d = {"results": {"M": {"labels_seconds": 3.0, "cached_seconds": 2.7, "live_seconds": 8.0,
                           "all_seconds": a}}}
    (cached, live) = kd_cost.rows(d)
    # the median of the paired ratios, and each round's ratio; never min / max across rounds
    assert cached[2].startswith("1.00× (median of 3 rounds") and "1.10, 1.00, 0.90" in cached[2]
    assert cached[3] == "goal met"
    assert live[2].startswith("3.00× (median of 3 rounds: 2.00, 4.00, 3.00")
    a["cached"] = [5.0, 2.4, 3.6]
    assert kd_cost.rows(d)[0][3] == "goal missed"  # 1.25, 1.2, 1.2


def test_last_column_says_what_the_comparison_is(tiny):
    """Fewer errors than the paper is not "matched": each row says how it compares."""
    assert vs_paper(134.0, 146) == "fewer errors than the paper"
    assert vs_paper(146, 146) == "as many errors as the paper"
    assert vs_paper(91.7, 74) == "more errors than the paper"
    rows = hinton.rows(_read(tiny, "hinton"))
    assert all(row[3].endswith("the paper") or row[3].endswith("(another teacher)")
               for row in rows)
    text = render.render(tiny)
    assert "| yes |" not in text and "| no |" not in text
    assert "Compared with the paper / goal" in text


def test_variants_row_reads_the_paper_from_the_code(tiny, monkeypatch):
    d = _read(tiny, "hinton_variants")
    assert "paper_soft_errors" not in d["settings"]  # a constant of the code, not a setting
    best = min(v["errors"] for v in d["results"].values())
    monkeypatch.setitem(hinton.PAPER, "soft_errors", best - 1)
    (row,) = hinton_variants.rows(d)
    assert row[1] == str(best - 1) and row[3].startswith("none reaches")
    monkeypatch.setitem(hinton.PAPER, "soft_errors", best)
    (row,) = hinton_variants.rows(d)
    assert row[1] == str(best) and "at most the paper's" in row[3]


def test_migrate_fills_what_older_scripts_did_not_write(tiny, tmp_path):
    """benchmarks.migrate brings the files of older scripts to the current format from what
    they hold (a CPU model never recorded says so; the load note is judged by today's rule;
    course.json gets the one cache course runs used then), leaves current files alone, and a
    second run changes nothing."""
    old = tmp_path / "results"
    old.mkdir()
    d = _read(tiny, "kd_cost")
    assert f"CPU {d['env']['cpu_model']}" in render._conditions("kd_cost", d)
    del d["env"]["cpu_model"], d["env"]["cpu_capability"], d["env"]["cpu_flags"]
    d["load_note"] = "machine quiet at start (by an older rule)"
    (old / "kd_cost.json").write_text(json.dumps(d, indent=2) + "\n")
    c = _read(tiny, "course")
    del c["settings"]["cache"]
    del c["env"]["cpu_capability"], c["env"]["cpu_flags"]  # a model, but no capability
    (old / "course.json").write_text(json.dumps(c, indent=2) + "\n")
    current = (tiny / "threads.json").read_text()
    (old / "threads.json").write_text(current)
    assert migrate.main(["--results", str(old)]) == 0
    new, now = _read(old, "kd_cost"), _read(tiny, "kd_cost")
    assert list(new["env"]) == list(now["env"])  # the field where the scripts write it
    assert new["env"]["cpu_model"] == migrate.CPU_NOT_RECORDED
    assert new["env"]["cpu_capability"] is None and new["env"]["cpu_flags"] is None
    assert "CPU model and capability not recorded" in render._conditions("kd_cost", new)
    old_course = _read(old, "course")
    assert old_course["env"]["cpu_capability"] is None  # never guessed from the model
    assert (f"CPU {old_course['env']['cpu_model']} (capability not recorded)"
            in render._conditions("course", old_course))
    assert list(old_course["env"]) == list(_read(tiny, "course")["env"])
    assert new["load_note"] == now["load_note"]
    assert old_course["settings"] == _read(tiny, "course")["settings"]
    assert _read(old, "course")["settings"]["cache"] == course.USER_CACHE
    assert (old / "threads.json").read_text() == current
    texts = {p.name: p.read_text() for p in old.glob("*.json")}
    assert migrate.migrate_folder(old) == {}
    assert {p.name: p.read_text() for p in old.glob("*.json")} == texts


def test_cpu_flags_are_the_ones_that_pick_kernels():
    """The flags recorded are those of CPU_FLAGS the CPU has (x86 "flags", ARM "Features"),
    in CPU_FLAGS' order; none when /proc/cpuinfo names none; the conditions line says which."""
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw amx_tile lm\n"
    assert _common.cpu_flags(x86) == ["fma", "avx2", "avx512f", "avx512bw", "amx_tile"]
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve\nCPU part\t: 0xd40\n"
    assert _common.cpu_flags(arm) == ["asimd", "sve"]
    assert _common.cpu_flags("processor\t: 0\nflags\t\t: fpu sse2\n") == []
    assert _common.cpu_flags("") == []
    e = {"cpu_model": "AMD EPYC", "cpu_capability": "AVX2", "cpu_flags": ["fma", "avx2"]}
    assert _common.cpu_conditions(e) == "CPU AMD EPYC (torch capability AVX2; flags fma avx2)"
    assert _common.cpu_conditions({**e, "cpu_capability": "DEFAULT", "cpu_flags": []}) == (
        "CPU AMD EPYC (torch capability DEFAULT; flags none)")
    assert _common.cpu_conditions({"cpu_model": "AMD EPYC"}) == (
        "CPU AMD EPYC (capability not recorded)")  # a file not migrated yet: same words


def test_throughput_training_is_timed_like_kd_cost_epoch(tiny):
    d = _read(tiny, "throughput")
    s = d["settings"]
    assert "epoch_time" in s["training_timed"] and "warm-up" in s["warmup"]
    assert "warm-up" in throughput.conditions(d)
    assert throughput.settings_for("full")["n_training"] == kd_cost.settings_for("full")["n_train"]
    assert (throughput.settings_for("full")["batch_size_loader_training"]
            == kd_cost.settings_for("full")["batch_size"])


def test_throughput_and_course_results(tiny):
    r = _read(tiny, "throughput")["results"]
    assert {"loader", "Teacher_inference", "HintonMLP_training"} <= set(r)
    assert all(v["images_per_s"] > 0 for v in r.values())
    c = _read(tiny, "course")["results"]
    nb = c["quick"]["notebooks"]["tiny"]
    assert nb["ok"] and nb["error"] is None and nb["seconds"] > 0
    assert "make_test" not in c  # skipped on the tiny budget


def test_render_of_tiny_results_has_every_benchmark(tiny):
    text = render.render(tiny)
    for needle in ("soft targets, T = 20", "cached teacher logits", "quick budget",
                   "In-memory loader", "**tiny budget**"):
        assert needle in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert all(ln.count(" | ") == 3 for ln in rows)


def test_readme_table_matches_results():
    """benchmarks/README.md holds the full table, README.md the headline rows and the course
    map: both exactly what the renderer makes of the JSON."""
    full = render.BENCH_README.read_text()
    assert render.section(full) == render.render(RESULTS), (
        "benchmarks/README.md results table differs from benchmarks/results/*.json: "
        "run `python -m benchmarks.render`")
    readme = render.README.read_text()
    assert render.section(readme, render.HEAD_BEGIN, render.HEAD_END) == render.headline(RESULTS)
    assert render.course_map(readme) == readme, (
        "README course-map run times differ from benchmarks/results/course.json: "
        "run `python -m benchmarks.render`")
    assert render.up_to_date()


def test_headline_rows_are_measured_by_the_default_bench():
    """Every README headline row comes from a benchmark that `make bench` re-runs, and the
    README fits two screens."""
    data = render.load(RESULTS)
    for b in catalog.BENCHMARKS:
        if b.headlines:
            assert "default" in b.sets and b.name in catalog.names("default"), b.name
    head = render.headline(RESULTS).splitlines()
    assert len(head) == 2 + sum(len(b.headlines) for b in catalog.BENCHMARKS)  # one row each
    assert render.headline_rows(data) == [r for b in catalog.BENCHMARKS if b.name in data
                                          for h in b.headlines for r in b.module().rows(data[b.name], data)
                                          if re.match(h, r[0])]
    assert not [r for r in head if "1 thread" in r], "the 1-thread rows are make bench-long's"
    assert len(render.README.read_text().splitlines()) <= 100


def test_course_map_times_come_from_course_json(tmp_path, tiny):
    row = _read(tiny, "course")["results"]["quick"]["notebooks"]["tiny"]
    seconds, cap = row["seconds"], row["cpu_capability"]
    readme = tmp_path / "README.md"
    readme.write_text(f"| lab | what | time |\n|---|---|---|\n"
                      f"| [Tiny](labs/tiny.ipynb) | a lab | 99 min |\n"
                      f"| [Gone](labs/gone.ipynb) | not run | 5 s |\n"
                      f"| other | row | 7 s |\n{render.BEGIN}\n{render.END}\n")
    assert not render.up_to_date(readme, tiny)
    assert render.update(readme, tiny) is True
    rows = readme.read_text().splitlines()
    assert rows[2] == f"| [Tiny](labs/tiny.ipynb) | a lab | quick budget {seconds:.0f} s ({cap}) |"
    assert rows[3] == "| [Gone](labs/gone.ipynb) | not run | not measured |"
    assert rows[4] == "| other | row | 7 s |"  # rows without a lab link are left alone
    assert render.up_to_date(readme, tiny) and render.update(readme, tiny) is False


def test_update_rewrites_only_the_block(tmp_path, tiny):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{render.BEGIN}\nold table\n{render.END}\nafter\n")
    assert render.update(readme, tiny) is True
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{render.END}\nafter\n")
    assert render.section(text) == render.render(tiny)
    assert render.update(readme, tiny) is False
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="bench:begin"):
        render.update(readme, tiny)


def test_empty_results_render_a_hint(tmp_path):
    assert "make bench" in render.render(tmp_path)


def test_best_bias_is_the_minimiser():
    # class 3 is under-predicted by 2.0: the best bias lies in (1, 3]
    torch.manual_seed(0)
    labels = torch.arange(10).repeat(50)
    logits = torch.randn(500, 10) + 3 * torch.nn.functional.one_hot(labels, 10)
    logits[:, 3] -= 2.0
    b = hinton.best_bias(logits, labels, 3, (0.0, 10.0, 0.1))
    err = lambda v: int((hinton._with_bias(logits, 3, v).argmax(1) != labels).sum())  # noqa: E731
    assert err(b) == min(err(i / 10) for i in range(101))
    assert err(b) < err(0.0)


def test_budget_names_are_checked():
    assert pick("tiny", full=1, tiny=2) == 2
    with pytest.raises(ValueError, match="budget must be one of"):
        pick("huge", full=1, tiny=2)


def test_wait_until_quiet_waits_for_the_load_to_drop(monkeypatch):
    from benchmarks import _common

    cores = _common.os.cpu_count() or 1
    loads = iter([2.0 * cores] * 3 + [0.1 * cores] * 10)
    monkeypatch.setattr(_common.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    polls = []
    monkeypatch.setattr(_common.time, "sleep", polls.append)
    _common.wait_until_quiet(60, poll=5)
    assert polls == [5, 5, 5]  # three busy readings, one poll after each; then quiet: go
    monkeypatch.setattr(_common.os, "getloadavg", lambda: (2.0 * cores, 0.0, 0.0))
    assert _common.wait_until_quiet(0) < 1  # never waits past max_seconds


def test_course_runs_make_test_before_it_checkpoints(tmp_path, monkeypatch):
    """make test runs while course.json still holds the finished run the README came from:
    a checkpoint written first would make the suite's README test fail inside the benchmark."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "course.json").write_text('{"complete": true}')
    seen = []

    def fake_make_test(**kw):
        seen.append(("make_test", json.loads((out / "course.json").read_text())["complete"]))
        return {"seconds": 0.0, "returncode": 0, "summary": "1 passed", "failed": []}

    def fake_execute(path, quick, **kw):
        seen.append(("execute", path.name))
        return {"seconds": 0.0, "ok": True, "error": None, "cells": 1}

    monkeypatch.setattr(course, "make_test", fake_make_test)
    monkeypatch.setattr(course, "execute", fake_execute)
    nb = tmp_path / "a.ipynb"
    nb.write_text("{}")
    course.run("tiny", out, notebooks=[nb], budgets=("quick",))
    assert seen == [("make_test", True), ("execute", "a.ipynb")]
    assert _read(out, "course")["results"]["make_test"]["summary"] == "1 passed"


def test_make_test_records_cpu_time_capability_and_cache(monkeypatch):
    """course.make_test's row: wall and CPU seconds, torch's capability, and with
    fresh_cache a new empty KDLAB_CACHE for the suite (as on a fresh clone)."""
    import subprocess
    import sys
    seen, run = [], subprocess.run

    def fake_run(cmd, env=None, **kw):
        seen.append((cmd, env.get("KDLAB_CACHE"), env["PYTEST_ADDOPTS"]))
        run([sys.executable, "-c", "import time\nt = time.process_time()\n"
             "while time.process_time() - t < 0.3: pass"])  # a child that uses 0.3 s of CPU
        return subprocess.CompletedProcess(cmd, 0, stdout="== 3 passed in 1.00s ==\n", stderr="")

    monkeypatch.setattr(course.subprocess, "run", fake_run)
    monkeypatch.delenv("KDLAB_CACHE", raising=False)
    row = course.make_test(fresh_cache=True)
    assert seen[0][0] == course.MAKE_TEST and "--durations=10" in seen[0][2]
    assert seen[0][1] and not os.path.exists(seen[0][1])  # a new cache, removed afterwards
    assert row["cache"] == course.FRESH_CACHE_MAKE_TEST and row["summary"] == "3 passed in 1.00s"
    assert row["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert row["cpu_seconds"] >= 0.3  # the CPU time of what it ran, however busy the machine
    assert course.make_test()["cache"] == course.USER_CACHE and seen[1][1] is None
    d = {"settings": {"goals": course.GOALS, "notebooks": []}, "env": {},
         "results": {"make_test": {**row, "seconds": 250.0, "cpu_seconds": 420.0}}}
    (cell,) = [r[2] for r in course.rows(d)]
    assert cell == (f"4.2 min (3 passed in 1.00s; 7.0 min of CPU; torch capability "
                    f"{row['cpu_capability']})")


def test_course_update_remeasures_only_what_is_asked(tmp_path, monkeypatch):
    from benchmarks import _common
    monkeypatch.setattr(_common, "SETTLE_SECONDS", 0)
    earlier = {"benchmark": "course", "budget": "full", "complete": True,
               "settings": {"notebooks": ["01_a.ipynb"], "goals": course.GOALS},
               "results": {"make_test": {"seconds": 250.0, "returncode": 0, "summary": "9 passed"},
                           "full": {"notebooks": {"01_a": {"seconds": 7.0, "ok": True}},
                                    "total_seconds": 7.0, "all_ok": True}},
               "env": {"date": "2026-01-02T03:04:05Z"}, "load": {"start": [0.1], "end": [0.2]},
               "load_note": "machine quiet at start"}
    (tmp_path / "course.json").write_text(json.dumps(earlier))
    nb = course._tiny_notebook(tmp_path)
    r = course.run("full", tmp_path, notebooks=[nb], budgets=("quick",), skip_make_test=True,
                   update=True)
    assert r["make_test"] == earlier["results"]["make_test"]  # kept, not re-run
    assert r["full"]["notebooks"] == {"01_a": {**earlier["results"]["full"]["notebooks"]["01_a"],
                                               "kernel_threads": "torch default"}}
    assert list(r["quick"]["notebooks"]) == ["tiny"] and r["quick"]["notebooks"]["tiny"]["ok"]
    assert r["quick"]["notebooks"]["tiny"]["measured"].startswith("20")
    assert r["remeasured"] == ["quick tiny"] and r["earlier_run"]["date"] == "2026-01-02T03:04:05Z"
    assert json.loads((tmp_path / "course.json").read_text())["complete"]
    # the conditions line dates the kept rows: here a row older than per-row times
    assert ("the other rows come from earlier runs, measured 2026-01-02 03:04 UTC"
            in course.conditions(json.loads((tmp_path / "course.json").read_text())))
    # each row keeps the CPU capability it was measured with; the earlier run recorded none
    d = json.loads((tmp_path / "course.json").read_text())
    cap = torch.backends.cpu.get_cpu_capability()
    assert r["quick"]["notebooks"]["tiny"]["cpu_capability"] == cap
    assert course.row_capability(d, d["results"]["make_test"]) is None
    assert ("01_a (full), make test measured with capability not recorded"
            in course.conditions(d))
    (make_row,) = [row for row in course.rows(d) if row[0].startswith("`make test`")]
    assert make_row[2].endswith("(9 passed; capability not recorded)")
    (slow,) = [row for row in course.rows(d) if row[0] == "Slowest lab, full budget"]
    assert "(01_a, capability not recorded" in slow[2]
    # each row keeps the kernel threads it was measured with; the conditions line names both
    assert r["full"]["notebooks"]["01_a"]["kernel_threads"] == "torch default"
    r = course.run("full", tmp_path, notebooks=[nb], budgets=("quick",), skip_make_test=True,
                   update=True, kernel_threads=1)
    assert r["quick"]["notebooks"]["tiny"]["kernel_threads"] == 1
    assert r["full"]["notebooks"]["01_a"]["kernel_threads"] == "torch default"
    d = json.loads((tmp_path / "course.json").read_text())
    assert course._kernel_threads(d) == "torch default; 1 for tiny (quick)"


@pytest.fixture
def one_thread():
    """torch on one thread for tiny runs (as the tiny fixture), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hinton_consistent_resumes_an_interrupted_run(tmp_path, monkeypatch, one_thread):
    """The checkpoint an interrupted run leaves is reused, run by run, with the same recipe."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    first = hinton_consistent.run("tiny", tmp_path)
    path = tmp_path / "hinton_consistent.json"
    d = json.loads(path.read_text())
    d["complete"] = False  # as if stopped after the distilled students
    for part in ("labels", "k_curve", "epochs_curve", "epoch_cost"):
        d["results"].pop(part)
    for key in [k for k in d["results"]["finished_runs"] if not k.startswith("kd/0/2/2")]:
        del d["results"]["finished_runs"][key]
    path.write_text(json.dumps(d))
    again = hinton_consistent.run("tiny", tmp_path)
    assert again["resumed_runs"] == ["kd/0/2/2"]
    assert again["kd"] == first["kd"] and again["labels"]["errors"] == first["labels"]["errors"]
    # a checkpoint from before the elastic runs (no elastic settings) that asked for other
    # seeds: its runs of the same recipe are reused, and the elastic ones are made
    d = json.loads(path.read_text())
    d["complete"] = False
    for k in ("elastic_field", "elastic", "elastic_seeds"):
        d["settings"].pop(k)
    d["settings"]["seeds"] = [7]
    d["results"]["finished_runs"] = {k: q for k, q in d["results"]["finished_runs"].items()
                                     if not k.startswith("kd_elastic/")}
    path.write_text(json.dumps(d))
    third = hinton_consistent.run("tiny", tmp_path)
    assert third["resumed_runs"] == [k for k in d["results"]["finished_runs"]]
    assert third["kd_elastic"]["errors"] == again["kd_elastic"]["errors"]  # made again, seeded
    s = hinton_consistent.settings_for("tiny")
    field = {**s, "elastic_field": [30.0, 4.0]}  # another field: only the elastic runs differ
    assert hinton_consistent._recipe(field, False) == hinton_consistent._recipe(s, False)
    assert hinton_consistent._recipe(field, True) != hinton_consistent._recipe(s, True)
    d["settings"]["epochs"] += 1  # other settings: nothing is reused
    path.write_text(json.dumps(d))
    assert hinton_consistent.run("tiny", tmp_path)["resumed_runs"] == []


def test_hinton_consistent_parts_in_parallel_combine(tmp_path, monkeypatch, one_thread):
    """--part shift and --part elastic leave checkpoints; an "all" run reusing both trains no
    student again, writes the complete file, and counts the reused students' seconds."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    shift = hinton_consistent.run("tiny", a, part="shift")
    elastic = hinton_consistent.run("tiny", b, part="elastic")
    assert "kd_elastic" not in shift and "labels" not in elastic and "k_curve" not in elastic
    for folder in (a, b):
        assert json.loads((folder / "hinton_consistent.json").read_text())["complete"] is False
    both = hinton_consistent.run("tiny", a, reuse_from=[b / "hinton_consistent.json"])
    d = json.loads((a / "hinton_consistent.json").read_text())
    assert d["complete"] is True and set(both["resumed_runs"]) == set(d["results"]["finished_runs"])
    assert both["kd_elastic"]["errors"] == elastic["kd_elastic"]["errors"]
    assert both["labels"]["errors"] == shift["labels"]["errors"]
    assert both["reused_seconds"] == pytest.approx(
        sum(q["seconds"] for q in d["results"]["finished_runs"].values()), abs=0.2)
    assert f"{render._wall(d) / 60:.1f} min in all" in render._conditions("hinton_consistent", d)
    with pytest.raises(ValueError, match="part must be one of"):
        hinton_consistent.run("tiny", a, part="half")


def test_course_full_1thread_budget_and_fresh_cache(tmp_path, monkeypatch):
    """full-1thread runs the kernels with KDLAB_THREADS=1; --fresh-cache gives each budget's
    notebooks one new kdlab cache folder; the course map shows both full-budget times."""
    from benchmarks import _common
    monkeypatch.setattr(_common, "SETTLE_SECONDS", 0)
    seen = []

    def fake_execute(path, quick, kernel_threads=None, save=False, env=None, **kw):
        seen.append((path.stem, quick, kernel_threads, dict(env or {})))
        return {"seconds": 61.0 if kernel_threads == 1 else 30.0, "ok": True, "error": None,
                "cells": 1}

    monkeypatch.setattr(course, "execute", fake_execute)
    nbs = []
    for name in ("01_a", "02_b"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
        nbs.append(tmp_path / f"{name}.ipynb")
    r = course.run("full", tmp_path, notebooks=nbs, budgets=("full", "full-1thread"),
                   skip_make_test=True, fresh_cache=True)
    full = [s for s in seen if s[2] is None]
    one = [s for s in seen if s[2] == 1]
    assert [s[0] for s in full] == ["01_a", "02_b"] and [s[0] for s in one] == ["01_a", "02_b"]
    assert all(s[3].get("KDLAB_THREADS") == "1" for s in one)
    assert all("KDLAB_THREADS" not in s[3] for s in full)
    caches = {s[3]["KDLAB_CACHE"] for s in full}, {s[3]["KDLAB_CACHE"] for s in one}
    assert len(caches[0]) == 1 and len(caches[1]) == 1 and caches[0] != caches[1]
    assert r["full-1thread"]["lab_goal_met"] and r["full"]["lab_goal_met"]
    cell = course.lab_time(_read(tmp_path, "course"), "02_b")
    assert cell == "30 s; 1 thread 61 s"
    # a 1-thread row that recorded its kernel's CPU time and capability shows both
    d = _read(tmp_path, "course")
    d["results"]["full-1thread"]["notebooks"]["02_b"].update(cpu_seconds=58.0, cpu_capability="AVX2")
    d["results"]["full"]["notebooks"]["02_b"]["cpu_capability"] = "AVX512"
    assert course.lab_time(d, "02_b") == "30 s (AVX512); 1 thread 58 s of CPU (AVX2)"
    rows = course.rows(_read(tmp_path, "course"))
    assert any(row[0] == "Slowest lab, full budget, 1 thread" for row in rows)


def test_benchmarks_are_listed_once():
    """benchmarks.catalog is the one list: every benchmark module is in it (and nothing else),
    its sets give make bench and make bench-long, the course runs last, and run_all takes the
    course's options from its entry."""
    import pkgutil

    import benchmarks
    scripts = {m.name for m in pkgutil.iter_modules(benchmarks.__path__)} - {
        "_common", "catalog", "render", "run_all", "migrate", "grading_cpu",  # tools, no results table
        "lm_trl"}  # Lab 07's comparison with TRL (needs the optional kdlab[trl]): the lab cites its JSON
    assert set(catalog.BY_NAME) == scripts
    assert catalog.names("default") == ("kd_cost", "throughput", "threads", "grading", "course")
    assert catalog.names("long") == ("hinton", "hinton_mlp_teacher", "hinton_consistent",
                                     "hinton_variants", "course")
    assert catalog.names("all")[-1] == "course" and len(catalog.names("all")) == len(scripts)
    for b in catalog.BENCHMARKS:
        for name in ("run", "rows", "conditions"):
            assert callable(getattr(b.module(), name)), f"{b.name}.{name}"
    with pytest.raises(ValueError, match="no benchmark set 'fast'"):
        catalog.names("fast")
    import inspect

    from benchmarks import run_all
    assert '"course"' not in inspect.getsource(run_all) and "course" not in inspect.getsource(render.headline)


def test_course_renders_the_readmes_when_it_writes_the_shipped_results(tmp_path, monkeypatch):
    """python -m benchmarks.course re-renders README.md and benchmarks/README.md when its
    results go to benchmarks/results/ (as run_all does), so that the README's rows are never
    left behind the JSON; results written elsewhere leave the READMEs alone."""
    ran, rendered = [], []
    monkeypatch.setattr(course, "run", lambda *a, **k: ran.append(a[1]))
    monkeypatch.setattr(render, "update", lambda *a, **k: rendered.append(a) or True)
    course.main(["--budget", "tiny", "--out", str(tmp_path), "--skip-make-test"])
    assert ran == [tmp_path] and rendered == []
    monkeypatch.setattr(course, "RESULTS", tmp_path)
    course.main(["--budget", "tiny", "--out", str(tmp_path), "--skip-make-test"])
    assert ran == [tmp_path] * 2 and rendered == [()]
