"""Beyond the paper: the 800-800 MLP distilled with consistent views at the cost of cached KD.

Beyer et al. (2022): the student and the teacher should see the same augmented view. A live
teacher on fresh jittered views costs a teacher pass per step (``benchmarks.kd_cost``: about
5x a labels-only epoch). Here the ResNet teacher sees K fixed jittered views of every training
image once (``kd.views.jittered``, bilinear shifts of up to 2 px); the student trains on a
random one of the K views of each image per epoch, with the cached logits of that same view
(``kd.views.ViewBatches`` + ``kd.train.fit(..., teacher_logits=...)``, the course's one loop).

Measures (test errors out of 10,000, the un-jittered test set):
- the distilled 800-800 MLP (``kd.models.HintonMLP``) at K views, 3 seeds: goal <= 50 errors
  (mean), with its epoch within 1.2x of a cached-KD epoch on the un-jittered images;
- the same MLP trained on the labels of the same views (so the gain is distillation, not
  augmentation alone);
- errors vs K (1, 2, 4, K) and vs the number of epochs, seed 0;
- the epoch-time ratio, paired per round like ``benchmarks.kd_cost``;
- the distilled MLP on K elastic views instead (Simard et al. 2003: a smooth random
  displacement field, then the shift; ``kd.views.elastic``), 3 seeds, same recipe otherwise.

Every student is checkpointed in the results file; a run with the same recipe reuses the runs
an interrupted run finished (also when it asks for more runs, e.g. the elastic ones).

    python -m benchmarks.hinton_consistent [--budget tiny|full] [--seeds 0 1 2]
"""
from __future__ import annotations

import functools
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.grading.keys.lab03 import kd_loss

from .hinton import _summary
from ._common import (RESULTS, Run, goal_verdict, mean_std, parser, pick, plural, ratios,
                      set_threads)

GOAL_ERRORS = 50
GOAL_EPOCH_RATIO = 1.2
ELASTIC_FIELD = (34.0, 4.0)  # (alpha, sigma) of kd.views.elastic
#: the figure of the curves (file in the results folder, caption in benchmarks/README.md)
FIGURE = ("hinton_consistent.png", "Consistent views: errors vs views K and vs epochs")


def settings_for(budget: str, seeds=None) -> dict:
    """The settings of a run for a budget; explicit arguments override the budget's values."""
    s = {
        "student": "kd.models.HintonMLP (784-800-800-10 ReLU, no dropout, no weight constraint)",
        "teacher": "kd.teacher.load_teacher() (the course's ResNet)",
        "n_train": pick(budget, 60_000, 300),
        "n_test": pick(budget, 10_000, 200),
        "views": pick(budget, 16, 2),
        "pixels": 2,
        "shift": "real offsets uniform in [-2, 2] px in x and y, bilinear, black border",
        "integer_shift": False,
        "view_seed": 0,
        "epochs": pick(budget, 160, 2),
        "batch_size": 128,
        "optimizer": "Adam",
        "lr": 1e-3,
        "schedule": "OneCycleLR to lr (cosine), per step",
        "T": 20.0,
        "alpha": 0.9,
        "loss_kd": "kdlab.losses.kd_loss: (1-alpha) CE(labels) + alpha T^2 KL",
        "loss_labels": "cross-entropy on the labels of the same views",
        "seeds": pick(budget, [0, 1, 2], [0]),
        "labels_seeds": pick(budget, [0], [0]),
        "k_curve": pick(budget, [1, 2, 4, 8, 16], [1, 2]),
        "k_curve_epochs": pick(budget, 30, 1),
        "epochs_curve": pick(budget, [30, 80, 160], [1, 2]),
        "cost_rounds": pick(budget, 3, 1),
        "elastic_field": list(ELASTIC_FIELD),
        "elastic": "per view: a displacement uniform in [-1, 1] px per pixel and axis, smoothed "
                   f"by a Gaussian of sigma {ELASTIC_FIELD[1]:g} px, times alpha "
                   f"{ELASTIC_FIELD[0]:g} (Simard et al. 2003), then the shift",
        "elastic_seeds": pick(budget, [0, 1, 2], [0]),
    }
    if seeds is not None:
        s["seeds"] = list(seeds)
    return s


def _views(s: dict, x: torch.Tensor, teacher, elastic: bool = False) -> tuple:
    """The K views (shifts, or elastic distortions and shifts) and their teacher logits; the
    logits are cached on disk (keyed by the checkpoint and the views), with the seconds and
    threads of their computation."""
    field = tuple(s["elastic_field"]) if elastic else None
    views = kd.views.jittered(x, s["views"], s["pixels"], s["view_seed"], s["integer_shift"],
                              elastic_field=field)
    sha = kd.teacher.metadata()["sha256"]
    recipe = [sha, s["n_train"], s["views"], s["pixels"], s["view_seed"], s["integer_shift"]]
    key = hashlib.sha256(json.dumps(recipe + ([list(field)] if elastic else [])).encode()
                         ).hexdigest()[:16]
    path = kd.data.cache_dir() / "view-logits" / f"{key}.pt"
    blob = torch.load(path, weights_only=True) if path.exists() else None
    if blob is not None and tuple(blob["logits"].shape) == (len(views) * len(x), 10):
        source = "cache"
    else:
        t0 = time.perf_counter()
        logits = kd.views.teacher_logits(teacher, views, progress=False)
        blob = {"logits": logits, "seconds": round(time.perf_counter() - t0, 1),
                "threads": torch.get_num_threads()}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        source = "computed"
    return views, blob["logits"], {"source": source, "seconds": blob["seconds"],
                                   "threads": blob["threads"],
                                   "teacher_passes": int(blob["logits"].shape[0]),
                                   "path": str(path)}


def cache_views(budget: str = "full", elastic: bool = False) -> dict:
    """Compute (or find) the cached teacher logits of the views alone; return their record."""
    s = settings_for(budget)
    x, _ = kd.data.mnist("train")
    return _views(s, x[:s["n_train"]], kd.teacher.load_teacher(device="cpu"), elastic)[2]


def _train(s: dict, seed: int, data, loss, epochs: int, val, teacher_logits=None) -> tuple:
    """Train a HintonMLP with the run's recipe; return the model and its history."""
    kd.seed(seed)
    model = kd.models.HintonMLP()
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s["lr"], total_steps=epochs * len(data))
    h = kd.train.fit(model, data, loss, epochs, optimizer=opt, scheduler=sched,
                     teacher_logits=teacher_logits, val=val, progress=False)
    return model, h


def _epoch_cost(s: dict, x, y, t_plain, views, t_views, loss) -> dict:
    """Seconds of one view-KD epoch and one cached-KD epoch (un-jittered), interleaved per round."""
    times = {"cached": [], "views": []}
    for r in range(s["cost_rounds"]):
        for mode in times:
            kd.seed(r)
            model = kd.models.HintonMLP()
            data = (kd.data.Batches(x, y, s["batch_size"], seed=r) if mode == "cached" else
                    kd.views.ViewBatches(views, y, s["batch_size"], seed=r))
            h = kd.train.fit(model, data, loss, 1, teacher_logits=t_plain if mode == "cached"
                             else t_views, progress=False)
            times[mode].append(round(h["epoch_time"][0], 6))
    ratios = [v / c for v, c in zip(times["views"], times["cached"])]
    med = statistics.median(ratios)
    return {"seconds": times, "ratio_by_round": [round(q, 3) for q in ratios],
            "ratio": round(med, 3), "goal": GOAL_EPOCH_RATIO, "within_goal": med <= GOAL_EPOCH_RATIO}


def plot(res: dict, s: dict, path) -> None:
    """Errors vs K and vs epochs (seed 0), with the labels-only student, the goal, the paper and
    the students of the elastic views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def epochs(n):
        return f"{n} epoch" + "s" * (n != 1)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    curves = ((axes[0], res["k_curve"], "views", f"views K (log 2), {epochs(s['k_curve_epochs'])}"),
              (axes[1], res["epochs_curve"], "epochs", f"epochs, K = {s['views']}"))
    for ax, runs, key, xlabel in curves:
        ax.plot([q[key] for q in runs], [q["errors"] for q in runs], "o-", color="C3",
                label="KD, consistent views")
        ax.axhline(res["labels"]["mean"], color="0.5", ls="--",
                   label=f"labels on the views ({epochs(s['epochs'])})")
        ax.axhline(74, color="k", ls=":", label="paper's distilled MLP (74)")
        ax.axhline(GOAL_ERRORS, color="C2", ls="-.", label=f"goal ({GOAL_ERRORS})")
        ax.axhline(res["teacher_errors"], color="C0", ls="-", lw=0.8, label="teacher")
        ax.set_xlabel(xlabel)
        ax.set_xticks([q[key] for q in runs])
        if key == "views":
            ax.set_xscale("log", base=2)
            ax.set_xticks([q[key] for q in runs], [str(q[key]) for q in runs])
    if "kd_elastic" in res:
        el = res["kd_elastic"]["runs"]
        axes[1].plot([q["epochs"] for q in el], [q["errors"] for q in el], "D", color="C4",
                     mfc="none", label=f"KD, elastic views (seeds {', '.join(str(q['seed']) for q in el)})")
    axes[0].set_ylabel(f"test errors (of {s['n_test']:,}), seed 0")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle("800-800 MLP distilled from cached jittered views of the ResNet teacher", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# settings that only choose which runs to make (a run's key names its seed, K and epochs)
_CHOICE = ("seeds", "labels_seeds", "k_curve", "k_curve_epochs", "epochs_curve", "cost_rounds",
           "elastic_seeds")
_ELASTIC = ("elastic_field", "elastic")  # the recipe of the elastic runs only


def _recipe(s: dict, elastic: bool) -> dict:
    """The settings a run's result depends on."""
    return {k: v for k, v in json.loads(json.dumps(s)).items()
            if k not in _CHOICE and (elastic or k not in _ELASTIC)}


def _resumable(out, s: dict, reuse_from=()) -> dict:
    """Runs finished by interrupted runs with the same recipe: {"name/seed/K/epochs": run}.

    Read from the checkpoint a run left (hinton_consistent.json with "complete": false) in
    `out` and in the files `reuse_from` (checkpoints of runs made in parallel, each with
    ``--part``); they may have asked for other runs (seeds, curves). Elastic runs also need the
    same field."""
    done = {}
    for path in [Path(out) / "hinton_consistent.json", *map(Path, reuse_from)]:
        if path.exists():
            done.update(_finished(json.loads(path.read_text()), s))
    return done


def _finished(d: dict, s: dict) -> dict:
    """The finished runs of one checkpoint `d` that a run with settings `s` may reuse."""
    if d.get("complete", True) or _recipe(d["settings"], False) != _recipe(s, False):
        return {}
    r = d["results"]
    elastic_ok = _recipe(d["settings"], True) == _recipe(s, True)
    done = {k: q for k, q in r.get("finished_runs", {}).items()
            if elastic_ok or not k.startswith("kd_elastic/")}
    for name in ("kd", "labels"):  # checkpoints written before finished_runs existed
        for q in r.get(name, {}).get("runs", []):
            done.setdefault(f"{name}/{q['seed']}/{q['views']}/{q['epochs']}", q)
    return done


PARTS = ("all", "shift", "elastic")


def run(budget: str = "full", out=RESULTS, seeds=None, part: str = "all", reuse_from=()) -> dict:
    """Run every measurement and write hinton_consistent.json; return the results.

    An interrupted run resumes: runs its checkpoint records (same recipe) are reused, also
    those of the checkpoints `reuse_from`. part: "all"; or "shift" (all but the elastic
    students) or "elastic" (the distilled students and the elastic ones), which leave a
    checkpoint, for two processes in parallel that a last "all" run combines."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    s = settings_for(budget, seeds)
    reuse = _resumable(out, s, reuse_from)
    title = "Consistent views: the 800-800 MLP distilled from K cached jittered views"
    with Run("hinton_consistent", budget, s, out=out, title=title) as r:
        res = r.results
        x, y = kd.data.mnist("train")
        xt, yt = kd.data.mnist("test")
        x, y, xt, yt = x[:s["n_train"]], y[:s["n_train"]], xt[:s["n_test"]], yt[:s["n_test"]]
        teacher = kd.teacher.load_teacher(device="cpu")
        views, t_views, res["view_logits"] = _views(s, x, teacher)
        res["teacher_errors"] = kd.evaluation.evaluate(teacher, xt, yt)["errors"]
        n, soft = len(x), functools.partial(kd_loss, T=s["T"], alpha=s["alpha"])
        print(f"views: {s['views']} x {n:,} images, teacher logits {res['view_logits']['source']} "
              f"in {res['view_logits']['seconds']} s; teacher {res['teacher_errors']} errors",
              flush=True)

        res["finished_runs"], res["resumed_runs"] = {}, []

        cur = {"views": views, "logits": t_views}  # the views the students train on now

        def student(name, seed, k=s["views"], epochs=s["epochs"]):
            key = f"{name}/{seed}/{k}/{epochs}"
            if key in reuse:
                print(f"{key}: {reuse[key]['errors']} errors (from the interrupted run)", flush=True)
                res["finished_runs"][key] = reuse[key]
                res["resumed_runs"].append(key)
                return reuse[key]
            data = kd.views.ViewBatches(cur["views"][:k], y, s["batch_size"], seed=seed)
            if name == "labels":
                model, h = _train(s, seed, data, F.cross_entropy, epochs, (xt, yt))
            else:
                model, h = _train(s, seed, data, soft, epochs, (xt, yt), cur["logits"][:k * n])
            e = kd.evaluation.evaluate(model, xt, yt)["errors"]
            print(f"{name} K={k} {epochs} epochs seed {seed}: {e} errors "
                  f"({sum(h['epoch_time']):.0f} s)", flush=True)
            res["finished_runs"][key] = {
                "seed": seed, "views": k, "epochs": epochs, "errors": e,
                "val_errors": h["val_errors"], "seconds": round(sum(h["epoch_time"]), 1),
                "epoch_seconds": round(statistics.median(h["epoch_time"]), 3)}
            r.save(complete=False)  # a checkpoint: an interrupted run resumes from here
            return res["finished_runs"][key]

        runs = [student("kd", q) for q in s["seeds"]]
        res["kd"] = {**_summary([q["errors"] for q in runs]), "runs": runs}
        res["seeds"], res["errors"] = s["seeds"], res["kd"]["errors"]
        res["goal_errors"] = GOAL_ERRORS
        res["within_goal_errors"] = res["kd"]["mean"] <= GOAL_ERRORS
        if part != "elastic":
            lab = [student("labels", q) for q in s["labels_seeds"]]
            res["labels"] = {**_summary([q["errors"] for q in lab]), "runs": lab}
            main0 = {q["seed"]: q for q in runs}.get(0)
            res["k_curve"] = [student("kd", 0, k=k, epochs=s["k_curve_epochs"])
                              for k in s["k_curve"]]
            res["epochs_curve"] = [
                main0 if main0 is not None and e == s["epochs"] else
                next((q for q in res["k_curve"] if q["views"] == s["views"] and q["epochs"] == e),
                     None) or student("kd", 0, epochs=e) for e in s["epochs_curve"]]
            # the plain images' logits: the course's disk cache, not another teacher pass
            t_plain = kd.teacher.mnist_logits("train", indices=torch.arange(n), progress=False,
                                              verbose=False)
            res["epoch_cost"] = _epoch_cost(s, x, y, t_plain, views, t_views, soft)
            c = res["epoch_cost"]
            print(f"epoch: views {c['seconds']['views']} s vs cached {c['seconds']['cached']} s, "
                  f"ratio {c['ratio']} (goal <= {GOAL_EPOCH_RATIO})", flush=True)
        if part != "shift":
            cur.clear()
            del views, t_views  # 3 GB: make room for the elastic views
            cur["views"], cur["logits"], res["elastic_view_logits"] = _views(s, x, teacher, True)
            print(f"elastic views: teacher logits {res['elastic_view_logits']['source']} in "
                  f"{res['elastic_view_logits']['seconds']} s", flush=True)
            el = [student("kd_elastic", q) for q in s["elastic_seeds"]]
            res["kd_elastic"] = {**_summary([q["errors"] for q in el]), "runs": el,
                                 "within_goal_errors": statistics.mean(q["errors"] for q in el)
                                 <= GOAL_ERRORS}
        # the students' own seconds in the earlier runs this one reused (not in its wall time)
        res["reused_seconds"] = round(sum(res["finished_runs"][k]["seconds"]
                                          for k in res["resumed_runs"]), 1)
        if part != "all":
            r.complete = False  # a checkpoint for the run that combines the parts
            return r.results
        plot(res, s, r.out / FIGURE[0])
        print(f"distilled, {s['views']} views: {res['kd']['errors']} errors (mean "
              f"{res['kd']['mean']:.1f}); labels on the same views: {res['labels']['errors']}; "
              f"elastic views: {res['kd_elastic']['errors']}", flush=True)
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table rows of hinton_consistent.json; a run not finished shows the parts it
    measured.

    Inputs: d, the parsed hinton_consistent.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, goal, this course, compared)].
    """
    r, s = d["results"], d["settings"]
    k, ep = s["views"], s["epochs"]
    out = []
    if "kd" in r:
        out.append((f"800-800 MLP distilled on {k} cached jittered views per image (consistent), "
                    f"T = {s['T']:g}, {plural(ep, 'epoch')}", f"≤ {r['goal_errors']} (goal; paper 74)",
                    mean_std(r["kd"]), goal_verdict(r["within_goal_errors"])))
    if "labels" in r:
        out.append((f"same MLP on the labels of the same views, {plural(ep, 'epoch')}", "-",
                    mean_std(r["labels"]), "-"))
    if "k_curve" in r:
        out.append((f"consistent views: errors vs views K (seed 0, "
                    f"{plural(s['k_curve_epochs'], 'epoch')})", "-",
                    "; ".join(f"K = {q['views']}: {q['errors']}" for q in r["k_curve"]), "-"))
    if "epochs_curve" in r:
        out.append((f"consistent views: errors vs epochs (seed 0, K = {k})", "-",
                    "; ".join(f"{plural(q['epochs'], 'epoch')}: {q['errors']}"
                              for q in r["epochs_curve"]), "-"))
    if "epoch_cost" in r:
        c = r["epoch_cost"]
        n = len(c["ratio_by_round"])
        rounds = (f"median of {n} rounds, each views ÷ cached of the same round: "
                  f"{ratios(c['ratio_by_round'])}" if n > 1 else "1 round")
        med_v = statistics.median(c["seconds"]["views"])
        med_c = statistics.median(c["seconds"]["cached"])
        out.append((f"epoch on {k} cached views vs cached-KD epoch (un-jittered images)",
                    f"≤ {c['goal']:.1f}×", f"{c['ratio']:.2f}× ({rounds}; median epoch "
                    f"{med_v:.1f} s vs {med_c:.1f} s)", goal_verdict(c["within_goal"])))
    if "kd_elastic" in r:
        alpha, sigma = s["elastic_field"]
        out.append((f"800-800 MLP distilled on {k} cached elastic views per image (consistent: "
                    f"field alpha {alpha:g}, sigma {sigma:g} px, then the shift), same recipe",
                    f"≤ {r['goal_errors']} (goal; paper 74)", mean_std(r["kd_elastic"]),
                    goal_verdict(r["kd_elastic"]["within_goal_errors"])))
    return out


def _view_logits(v: dict) -> str:
    """How the teacher's logits of the views were made (results["view_logits"] or
    ["elastic_view_logits"]), for the conditions line."""
    made = (f"teacher logits of the {v['teacher_passes']:,} views computed in {v['seconds']:.0f} s "
            f"with {v['threads']} thread(s)")
    return made + (" (read from the cache in this run)" if v["source"] == "cache" else "")


def conditions(d: dict) -> str:
    """The views, the recipe and how the views' teacher logits were made, for the conditions line."""
    s = d["settings"]
    text = (f"{s['views']} views ({s['shift']}), view seed {s['view_seed']}; "
            f"{s['optimizer']} lr {s['lr']:g} one-cycle, batch {s['batch_size']}, "
            f"T {s['T']:g}, alpha {s['alpha']:g}; seeds {s['seeds']} (labels on views: "
            f"{s['labels_seeds']}); {_view_logits(d['results']['view_logits'])}")
    if "elastic_view_logits" in d["results"]:
        text += (f"; elastic views: {s['elastic']}, seeds {s['elastic_seeds']}, "
                 f"{_view_logits(d['results']['elastic_view_logits'])}")
    return text


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of the distilled student")
    p.add_argument("--cache-views-only", action="store_true",
                   help="only compute the teacher's logits of the views into the cache")
    p.add_argument("--elastic", action="store_true",
                   help="with --cache-views-only: the elastic views' logits")
    p.add_argument("--part", choices=PARTS, default="all",
                   help="shift: all but the elastic students; elastic: the distilled and the "
                        "elastic students (each leaves a checkpoint, to run the two in parallel)")
    p.add_argument("--reuse-from", type=Path, nargs="+", default=(),
                   help="checkpoints of other runs whose finished students are reused")
    a = p.parse_args(argv)
    set_threads(a.threads)
    if a.cache_views_only:
        print(cache_views(a.budget, a.elastic))
    else:
        run(a.budget, a.out, a.seeds, a.part, a.reuse_from)


if __name__ == "__main__":
    sys.exit(main())
