"""Data and inference throughput: images per second of the in-memory loader, of teacher and
student inference, and of student training, so a user can see where the time goes.

- loader: one pass of ``kd.data.Batches`` over the training set (indexing only, no model);
- inference: ``kd.evaluation.predict_logits`` (eval mode, no gradients, batches of 1,000);
- training: one epoch of ``kd.train.fit`` with cross-entropy (forward, backward, Adam step),
  timed as ``benchmarks.kd_cost`` times its labels-only epoch: the training loop only
  (``history["epoch_time"]``, no model set-up), batches of 128, the whole training set.

Each measurement runs once untimed first (so that start-up costs of the process, such as the
first allocations, are not counted), then is repeated; the median and the best are reported (the best is the closest to what an idle
machine does).

    python -m benchmarks.throughput [--budget tiny|full] [--repeats N]
"""
from __future__ import annotations

import statistics

import torch.nn.functional as F

import kdlab as kd

from ._common import RESULTS, Run, parser, pick, set_threads, timed


def settings_for(budget: str, repeats=None) -> dict:
    """Settings for a budget; explicit arguments override the budget's values."""
    s = {
        "n_loader": pick(budget, 60_000, 512),
        "n_inference": pick(budget, 10_000, 256),
        "n_training": pick(budget, 60_000, 256),
        "batch_size_loader_training": 128,
        "batch_size_inference": 1000,
        "repeats": pick(budget, 3, 1),
        "warmup": "one untimed warm-up run of each measurement before the timed repeats",
        "training_timed": "kd.train.fit history['epoch_time'] (the training loop only, as "
                          "kd_cost's labels-only epoch)",
        "models": ["Teacher", "HintonMLP", "TinyCNN"],
    }
    if repeats is not None:
        s["repeats"] = repeats
    return s


def _rate(n: int, seconds, repeats: int) -> dict:
    """Images per second of `seconds()` (a run returning the seconds to count), after one
    untimed warm-up run: median and best of `repeats`."""
    seconds()  # warm-up
    rates = [n / seconds() for _ in range(repeats)]
    return {"images_per_s": round(statistics.median(rates)), "best_images_per_s": round(max(rates)),
            "n_images": n, "repeats": repeats}


def run(budget: str = "full", out=RESULTS, repeats=None) -> dict:
    """Measure every throughput and write throughput.json; return the results."""
    s = settings_for(budget, repeats)
    with Run("throughput", budget, s, out=out, title="Throughput: images per second") as r:
        x, y = kd.data.mnist("train")
        res = r.results
        xl, yl = x[:s["n_loader"]], y[:s["n_loader"]]

        def loader():
            for _ in kd.data.Batches(xl, yl, s["batch_size_loader_training"], seed=0):
                pass

        res["loader"] = _rate(len(xl), lambda: timed(loader)[1], s["repeats"])
        xi = x[:s["n_inference"]]
        xs, ys = x[:s["n_training"]], y[:s["n_training"]]
        teacher = kd.teacher.load_teacher(device="cpu")
        for name in s["models"]:
            model = teacher if name == "Teacher" else getattr(kd.models, name)()
            res[f"{name}_inference"] = _rate(
                len(xi), lambda: timed(kd.evaluation.predict_logits, model, xi,
                                       s["batch_size_inference"])[1], s["repeats"])
            res[f"{name}_inference"].update(kd.models.cost(model))
            if name == "Teacher":
                continue  # the shipped teacher is not retrained here

            def train():
                kd.seed(0)
                m = getattr(kd.models, name)()
                h = kd.train.fit(m, kd.data.Batches(xs, ys, s["batch_size_loader_training"],
                                                    seed=0),
                                 F.cross_entropy, 1, progress=False, dev="cpu")
                return h["epoch_time"][0]

            res[f"{name}_training"] = _rate(len(xs), train, s["repeats"])
        for k, v in res.items():
            print(f"{k:20s} {v['images_per_s']:>10,} images/s (best {v['best_images_per_s']:,})",
                  flush=True)
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """One results-table row per throughput measured: median and best images per second.

    Inputs: d, the parsed throughput.json; results (all parsed JSON files) is not used.
    Returns: [(measurement, "-", this course, "-")].
    """
    names = {"loader": "In-memory loader (`kd.data.Batches`)"}
    out = []
    for key, v in d["results"].items():
        if key in names:
            what = names[key]
        else:
            model, kind = key.rsplit("_", 1)
            what = f"{model} {kind}"
            if "macs" in v:
                what += f" ({v['params'] / 1e6:.2f} M params, {v['macs'] / 1e6:.1f} M MACs/image)"
        out.append((what, "-", f"{v['images_per_s']:,} images/s (best {v['best_images_per_s']:,})",
                    "-"))
    return out


def conditions(d: dict) -> str:
    """How the training rate was timed, for the conditions line."""
    s = d["settings"]
    return f"training: {s['n_training']:,} images, {s['training_timed']}; {s['warmup']}"


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="repetitions of each measurement")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.repeats)


if __name__ == "__main__":
    main()
