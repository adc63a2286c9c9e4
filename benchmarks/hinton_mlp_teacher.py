"""The paper's teacher: a 1200-1200 MLP with dropout, max-norm and jitter, and its T = 20 students.

Hinton, Vinyals & Dean (2015), section 3: the teacher is a 784-1200-1200-10 ReLU MLP trained
with dropout and weight constraints on inputs jittered by up to 2 pixels (67 test errors); the
784-800-800-10 student distilled from it at T = 20 on the un-jittered 60,000 training images
makes 74 errors. ``benchmarks.hinton`` distils the same student from the course's ResNet
teacher (38 errors) and gets more errors than 74; the hypothesis to test is that the teacher's
kind (an MLP like the student, or a ResNet) matters.

This script trains that MLP teacher (checkpoint cached under the kdlab cache folder, keyed by
its recipe: a rerun reuses it) and distils the student from it with exactly the recipe of
``benchmarks.hinton`` (same epochs, optimiser, T, alpha, seeds), so the only change is the
teacher.

    python -m benchmarks.hinton_mlp_teacher [--budget tiny|full] [--seeds 0 1 2]
                                            [--teacher-epochs N] [--teacher-optimizer sgd]
"""
from __future__ import annotations

import hashlib
import json
import sys
import time

import torch
import torch.nn.functional as F

import kdlab as kd

from . import hinton
from ._common import (RESULTS, Run, goal_verdict, mean_std, parser, pick, plural,
                      set_threads, vs_paper)

GOAL_TEACHER_ERRORS = hinton.PAPER["teacher_errors"]


OPTIMIZERS = {"adam": {"optimizer": "Adam", "lr": 1e-3},
              "sgd": {"optimizer": "SGD", "lr": 0.1, "momentum": 0.9}}


def recipe_for(budget: str, epochs: int | None = None, optimizer: str = "adam") -> dict:
    """The teacher's recipe for a budget (epochs: override the budget's number of epochs;
    optimizer: "adam" or "sgd", see OPTIMIZERS)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"teacher_epochs must be >= 1, got {epochs}")
    return {
        "architecture": "kd.models.HintonMLP(hidden=1200, dropout_in=0.2, dropout=0.5)",
        "hidden": 1200,
        "dropout_in": 0.2,
        "dropout": 0.5,
        "max_norm": 3.5,
        "max_norm_applies_to": "each unit's incoming weight vector, after every optimizer step",
        "jitter": "whole-pixel shifts in -2..2 in x and y, fresh for every image at every step",
        "pixels": 2,
        **OPTIMIZERS[optimizer],
        "schedule": "OneCycleLR to lr (cosine), per step",
        "batch_size": 128,
        "epochs": pick(budget, 150, 1) if epochs is None else epochs,
        "seed": 0,
        "n_train": pick(budget, 60_000, 300),
    }


def settings_for(budget: str, seeds=None, teacher_epochs=None, optimizer="adam") -> dict:
    """The run's settings: the teacher's recipe and the students' (those of benchmarks.hinton)."""
    st = hinton.settings_for(budget, seeds=seeds)
    keep = ("student", "n_train", "n_test", "epochs", "batch_size", "optimizer", "lr", "schedule",
            "T", "alpha", "loss_soft", "seeds")
    return {"teacher": recipe_for(budget, teacher_epochs, optimizer),
            "students": {**{k: st[k] for k in keep},
                         "data": "the un-jittered training images (as the paper)"}}


def _checkpoint(recipe: dict):
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    folder = kd.data.cache_dir() / "hinton-mlp-teacher"
    return folder / f"{key}.pt", folder / f"{key}.json"


def teacher(recipe: dict, x, y, xt, yt) -> tuple:
    """The MLP teacher: from the cache if it holds this recipe's checkpoint, else trained."""
    model = kd.models.HintonMLP(recipe["hidden"], dropout_in=recipe["dropout_in"],
                                dropout=recipe["dropout"])
    ckpt, meta = _checkpoint(recipe)
    if ckpt.exists() and meta.exists():
        model.load_state_dict(torch.load(ckpt, weights_only=True))
        info = json.loads(meta.read_text())
        info["source"] = "cache"
        return model, info
    kd.seed(recipe["seed"])
    batches = kd.views.Jittered(kd.data.Batches(x, y, recipe["batch_size"], seed=recipe["seed"]),
                                recipe["pixels"], recipe["seed"], integer=True)
    options = {k: recipe[k] for k in ("lr", "momentum") if k in recipe}  # see OPTIMIZERS
    opt = getattr(torch.optim, recipe["optimizer"])(model.parameters(), **options)
    opt.register_step_post_hook(lambda *_: model.max_norm_(recipe["max_norm"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"],
                                                total_steps=recipe["epochs"] * len(batches))
    t0 = time.perf_counter()
    h = kd.train.fit(model, batches, F.cross_entropy, recipe["epochs"], optimizer=opt,
                     scheduler=sched, val=(xt, yt), progress=False, desc="MLP teacher")
    info = {"train_seconds": round(time.perf_counter() - t0, 1), "val_errors": h["val_errors"],
            "threads": torch.get_num_threads(),
            "max_row_norm": round(max(float(fc.weight.detach().norm(dim=1).max())
                                      for fc in (model.fc1, model.fc2, model.fc3)), 3)}
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), ckpt)
    meta.write_text(json.dumps(info, indent=2) + "\n")
    info["source"] = "trained"
    return model, info


def run(budget: str = "full", out=RESULTS, seeds=None, teacher_epochs=None,
        optimizer: str = "adam") -> dict:
    """Train (or reuse) the MLP teacher, distil the students; write hinton_mlp_teacher.json."""
    s = settings_for(budget, seeds, teacher_epochs, optimizer)
    st = s["students"]
    title = "The paper's teacher (1200-1200 MLP, dropout, max-norm, jitter) and its T = 20 students"
    with Run("hinton_mlp_teacher", budget, s, out=out, title=title) as r:
        res = r.results
        x, y, xt, yt = hinton.data(st)
        xs, ys = x[:s["teacher"]["n_train"]], y[:s["teacher"]["n_train"]]
        model, info = teacher(s["teacher"], xs, ys, xt, yt)
        res["teacher"] = {**info, "errors": kd.evaluation.evaluate(model, xt, yt)["errors"],
                          "goal": GOAL_TEACHER_ERRORS, "checkpoint": str(_checkpoint(s["teacher"])[0])}
        res["teacher"]["within_goal"] = res["teacher"]["errors"] <= GOAL_TEACHER_ERRORS
        print(f"MLP teacher ({info['source']}): {res['teacher']['errors']} test errors", flush=True)
        r.save(complete=False)
        logits = kd.evaluation.predict_logits(model, x)
        runs = []
        for q in st["seeds"]:
            m, h = hinton._train(st, q, x, y, hinton.soft_loss(st), (xt, yt), teacher_logits=logits)
            e = kd.evaluation.evaluate(m, xt, yt)["errors"]
            runs.append({"seed": q, "errors": e, "val_errors": h["val_errors"],
                         "seconds": round(h["seconds"], 1)})
            print(f"student seed {q}: {e} test errors ({h['seconds']:.0f} s)", flush=True)
            r.save(complete=False)
        errors = [q["errors"] for q in runs]
        res["seeds"], res["errors"] = st["seeds"], errors
        res["student"] = {**hinton._summary(errors), "runs": runs}
    return r.results


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


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table rows of hinton_mlp_teacher.json: the teacher, its students, and the
    students of the ResNet teacher beside them.

    Inputs: d, the parsed hinton_mlp_teacher.json; results, all parsed JSON files by name (the
    ResNet teacher's students come from its "hinton", if present).
    Returns: [(measurement, paper / goal, this course, compared)]; none for a checkpoint
    written before the students' summary.
    """
    r, t = d["results"], d["settings"]["teacher"]
    p = hinton.PAPER
    if "student" not in r:
        return []
    te = r["teacher"]
    recipe = (f"{t['hidden']}-{t['hidden']} MLP, dropout {t['dropout_in']:g}/{t['dropout']:g}, "
              f"max-norm {t['max_norm']:g}, ±{t['pixels']} px jitter, {plural(t['epochs'], 'epoch')}")
    out = [(f"Paper's teacher, ours: {recipe}", f"{p['teacher_errors']} (goal ≤ {te['goal']})",
            str(te["errors"]), goal_verdict(te["within_goal"]) + "; "
            + vs_paper(te["errors"], p["teacher_errors"])),
           (f"800-800 MLP on soft targets, T = {d['settings']['students']['T']:g}, from that MLP "
            "teacher", str(p["soft_errors"]), mean_std(r["student"]),
            vs_paper(r["student"]["mean"], p["soft_errors"]))]
    resnet = (results or {}).get("hinton")
    rn = resnet["results"]["soft"] if resnet else None
    out.append(("... the same students from the ResNet teacher (hinton.json) vs from the MLP "
                "teacher", "-", (f"{mean_std(rn)} vs {mean_std(r['student'])}" if rn else "-"),
                _teacher_verdict(r["student"], rn)))
    return out


def conditions(d: dict) -> str:
    """The teacher's recipe and training time, and the students' seeds, for the conditions line."""
    t, st, te = d["settings"]["teacher"], d["settings"]["students"], d["results"]["teacher"]
    return (f"teacher: {t['optimizer']} lr {t['lr']:g} one-cycle, batch {t['batch_size']}, "
            f"{plural(t['epochs'], 'epoch')}, seed {t['seed']}, trained in "
            f"{te['train_seconds'] / 60:.1f} min ({te['threads']} thread(s))"
            + (", reused from the cache" if te["source"] == "cache" else "")
            + f"; students: the recipe of hinton.json, seeds {st['seeds']}")


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of the students")
    p.add_argument("--teacher-epochs", type=int, default=None,
                   help="train the teacher this many epochs (default: 150, tiny budget 1)")
    p.add_argument("--teacher-optimizer", choices=sorted(OPTIMIZERS), default="adam",
                   help="the teacher's optimiser (default adam; sgd: momentum 0.9, lr 0.1)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.seeds, a.teacher_epochs, a.teacher_optimizer)


if __name__ == "__main__":
    sys.exit(main())
