"""Is the distilled MLP's error count a tuning accident? The Hinton benchmark's soft-target
student, one seed, with one setting of its recipe changed at a time.

``benchmarks.hinton`` trains the 784-800-800-10 MLP on soft targets at T = 20 with one recipe
(Adam lr 1e-3, batch 128, cosine decay, alpha 0.9, 30 epochs). This script reruns that
student on seed 0 with the recipe unchanged ("as in hinton.json") and with each variant
below, so the table can say whether the gap to the paper's 74 errors closes with a different
weight on the labels, learning rate, batch size or training length.

    python -m benchmarks.hinton_variants [--budget tiny|full] [--seed 0]
"""
from __future__ import annotations

import sys

import kdlab as kd

from . import hinton
from ._common import RESULTS, Run, parser, set_threads

# name -> function of the baseline settings giving the changed settings
VARIANTS = {
    "as in hinton.json": lambda s: {},
    "alpha 1 (soft targets only)": lambda s: {"alpha": 1.0},
    "lr x3": lambda s: {"lr": s["lr"] * 3},
    "lr / 3": lambda s: {"lr": s["lr"] / 3},
    "batch / 2": lambda s: {"batch_size": s["batch_size"] // 2},
    "batch x2": lambda s: {"batch_size": s["batch_size"] * 2},
    "epochs x2": lambda s: {"epochs": s["epochs"] * 2},
}


def run(budget: str = "full", out=RESULTS, seed: int = 0) -> dict:
    """Train the soft-target student once per variant; write hinton_variants.json."""
    base = hinton.settings_for(budget, seeds=[seed])
    s = {"baseline": {k: base[k] for k in ("n_train", "n_test", "epochs", "batch_size",
                                           "optimizer", "lr", "schedule", "T", "alpha")},
         "seed": seed, "student": base["student"], "teacher": base["teacher"],
         "variants": {name: f(base) for name, f in VARIANTS.items()}}
    with Run("hinton_variants", budget, s, out=out,
             title=f"Hinton soft-target student: one recipe change at a time (seed {seed})") as r:
        x, y, xt, yt = hinton.data(base)
        teacher = kd.teacher.load_teacher(device="cpu")
        t_train = kd.evaluation.predict_logits(teacher, x)
        for name, change in s["variants"].items():
            v = {**base, **change}
            model, h = hinton._train(v, seed, x, y, hinton.soft_loss(v), (xt, yt),
                                     teacher_logits=t_train)
            e = kd.evaluation.evaluate(model, xt, yt)["errors"]
            r.results[name] = {"change": change, "errors": e, "val_errors": h["val_errors"],
                               "best_epoch_errors": min(h["val_errors"]),
                               "seconds": round(h["seconds"], 1)}
            print(f"{name:28s}: {e} test errors ({h['seconds']:.0f} s)", flush=True)
            r.save(complete=False)
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table row of hinton_variants.json: every variant's errors against the paper's.

    Inputs: d, the parsed hinton_variants.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, paper, this course, compared)], one row (none without variants).
    """
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


def conditions(d: dict) -> str:
    """How many students of how many epochs, for the conditions line."""
    return (f"{len(d['results'])} students of {d['settings']['baseline']['epochs']} epochs"
            f" (x2 for 'epochs x2'), seed {d['settings']['seed']}")


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="the seed of every variant")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.seed)


if __name__ == "__main__":
    sys.exit(main())
