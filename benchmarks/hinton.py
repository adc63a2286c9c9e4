"""Reproduce the MNIST results of Hinton, Vinyals & Dean (2015), "Distilling the Knowledge
in a Neural Network", section 3, with the course's teacher and the paper's student.

Measures (test errors out of 10,000):
- the teacher (paper: 67 errors, a dropout-regularised 1200-1200 MLP; ours: the ResNet
  of ``kd.teacher.load_teacher()``);
- the 784-800-800-10 ReLU MLP (``kd.models.HintonMLP``, no regularisation) trained on the
  labels (paper: 146) and on soft targets at T = 20 plus the labels (paper: 74), several
  seeds, mean and sample standard deviation;
- the "omit the 3s" experiment: the distilled MLP never sees a 3 (paper: 206 errors, 133 of
  them on the 1,010 test 3s); then the bias of class 3 is raised (paper: +3.5, chosen on the
  test set: 109 errors, 14 on 3s, 98.6% of 3s right). Here the bias is chosen on the
  training set only (all 60,000 images, including the 3s the student never saw); the
  test-optimal bias is recorded for reference only.

Both students use the same recipe (Adam, cosine learning-rate decay, same epochs and batch
size, same seeds); the only difference is the loss. Training goes through ``kd.train.fit``
with cached teacher logits.

    python -m benchmarks.hinton [--budget tiny|full] [--epochs N] [--seeds 0 1 2]
"""
from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

import kdlab as kd
from kdlab.grading.keys.lab03 import kd_loss

from ._common import RESULTS, Run, mean_std, parser, pick, set_threads, timed, vs_paper

PAPER = {
    "teacher_errors": 67,
    "labels_errors": 146,
    "soft_errors": 74,
    "omit3_errors": 206,
    "omit3_errors_on_3s": 133,
    "omit3_bias": 3.5,
    "omit3_bias_errors": 109,
    "omit3_bias_errors_on_3s": 14,
    "omit3_bias_3s_correct_pct": 98.6,
}


def settings_for(budget: str, epochs=None, seeds=None, omit_seeds=None) -> dict:
    """The settings of a run for a budget; explicit arguments override the budget's values."""
    s = {
        "student": "kd.models.HintonMLP (784-800-800-10 ReLU, no regularisation)",
        "teacher": "kd.teacher.load_teacher()",
        "n_train": pick(budget, 60_000, 300),
        "n_test": pick(budget, 10_000, 200),
        "epochs": pick(budget, 30, 1),
        "batch_size": 128,
        "optimizer": "Adam",
        "lr": 1e-3,
        "schedule": "cosine decay to 0 over all steps (per step)",
        "T": 20.0,
        "alpha": 0.9,
        "loss_soft": "kdlab.losses.kd_loss: (1-alpha) CE(labels) + alpha T^2 KL(teacher^T || student^T)",
        "loss_labels": "cross-entropy on the labels",
        "seeds": pick(budget, [0, 1, 2], [0]),
        "omit_seeds": pick(budget, [0], [0]),
        "bias_grid": [0.0, 10.0, 0.1],
        "bias_chosen_on": "training set (all n_train images, 3s included), never the test set",
    }
    if epochs is not None:
        s["epochs"] = epochs
    if seeds is not None:
        s["seeds"] = list(seeds)
    if omit_seeds is not None:
        s["omit_seeds"] = list(omit_seeds)
    return s


def data(s: dict) -> tuple:
    """The first n_train training and n_test test images of MNIST: (x, y, xt, yt)."""
    x, y = kd.data.mnist("train")
    xt, yt = kd.data.mnist("test")
    return x[:s["n_train"]], y[:s["n_train"]], xt[:s["n_test"]], yt[:s["n_test"]]


def soft_loss(s: dict):
    """The distilled students' loss: kd_loss at the settings' T and alpha."""
    return functools.partial(kd_loss, T=s["T"], alpha=s["alpha"])


def _train(s: dict, seed: int, x, y, loss, val, teacher_logits=None) -> tuple[torch.nn.Module, dict]:
    """Train a HintonMLP with the shared recipe; return it and its history (+ seconds)."""
    kd.seed(seed)
    model = kd.models.HintonMLP()
    batches = kd.data.Batches(x, y, s["batch_size"], seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["epochs"] * len(batches))
    hist, seconds = timed(kd.train.fit, model, batches, loss, s["epochs"], optimizer=opt,
                          scheduler=sched, teacher_logits=teacher_logits,
                          val=val, progress=False)
    hist["seconds"] = seconds
    return model, hist


def _summary(errors: list[int]) -> dict:
    return {"errors": errors, "mean": statistics.mean(errors),
            "std": statistics.stdev(errors) if len(errors) > 1 else 0.0, "n_seeds": len(errors)}


def best_bias(logits: torch.Tensor, labels: torch.Tensor, cls: int, grid) -> float:
    """The bias added to logit `cls` that minimises the errors on (logits, labels).

    Inputs: logits (N, C), labels (N,), grid (start, stop, step). Ties go to the smallest bias.
    Returns: the bias (float).
    """
    start, stop, step = grid
    n = int(round((stop - start) / step)) + 1
    best, best_err = start, None
    for i in range(n):
        b = round(start + i * step, 6)
        err = int((_with_bias(logits, cls, b).argmax(1) != labels).sum())
        if best_err is None or err < best_err:
            best, best_err = b, err
    return best


def _with_bias(logits: torch.Tensor, cls: int, b: float) -> torch.Tensor:
    out = logits.clone()
    out[:, cls] += b
    return out


def _errors(logits: torch.Tensor, labels: torch.Tensor, cls: int = 3) -> dict:
    wrong = logits.argmax(1) != labels
    on = labels == cls
    n_cls = int(on.sum())
    e_cls = int((wrong & on).sum())
    return {"errors": int(wrong.sum()), f"errors_on_{cls}s": e_cls, f"n_{cls}s": n_cls,
            f"{cls}s_correct_pct": round(100 * (n_cls - e_cls) / max(n_cls, 1), 2)}


class _Resume:
    """Finished runs kept in <out>/hinton.partial (JSON lines) so an interrupted run resumes.

    Only runs with identical settings are reused; the file is removed when all are done.
    """

    def __init__(self, out: Path, settings: dict):
        self.path = Path(out) / "hinton.partial"
        self.key = json.dumps({k: v for k, v in settings.items()
                               if k not in ("seeds", "omit_seeds")}, sort_keys=True)
        self.done = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                row = json.loads(line)
                if row["key"] == self.key:
                    self.done[row["name"]] = row["result"]
        self.reused = sorted(self.done)

    def get(self, name: str, fn):
        if name not in self.done:
            self.done[name] = fn()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"key": self.key, "name": name,
                                    "result": self.done[name]}) + "\n")
        return self.done[name]

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def run(budget: str = "full", out=None, epochs=None, seeds=None, omit_seeds=None) -> dict:
    """Run the reproduction and write hinton.json; return the results dict."""
    s = settings_for(budget, epochs, seeds, omit_seeds)
    title = "Hinton, Vinyals & Dean (2015), MNIST: test errors out of 10,000"
    out = Path(out) if out is not None else RESULTS
    resume = _Resume(out, s)
    with Run("hinton", budget, s, out=out, title=title) as r:
        x, y, xt, yt = data(s)
        res = r.results
        res["paper"] = PAPER
        soft = soft_loss(s)
        t_train = None

        def student(name, seed):
            if name == "labels":
                model, h = _train(s, seed, x, y, F.cross_entropy, (xt, yt))
            else:
                model, h = _train(s, seed, x, y, soft, (xt, yt), teacher_logits=t_train)
            e = kd.evaluation.evaluate(model, xt, yt)["errors"]
            print(f"{name:6s} seed {seed}: {e} test errors ({h['seconds']:.0f} s)", flush=True)
            return {"seed": seed, "errors": e, "val_errors": h["val_errors"],
                    "seconds": round(h["seconds"], 1),
                    "epoch_seconds": [round(t, 1) for t in h["epoch_time"]]}

        def omit3(seed):
            keep = kd.data.indices_without(y, 3)
            model, h = _train(s, seed, x[keep], y[keep], soft, (xt, yt),
                              teacher_logits=t_train[keep])
            lt = kd.evaluation.predict_logits(model, xt)
            ltr = kd.evaluation.predict_logits(model, x)
            b = best_bias(ltr, y, 3, s["bias_grid"])
            row = {"seed": seed, "seconds": round(h["seconds"], 1),
                   "n_transfer": len(keep), "before": _errors(lt, yt),
                   "bias": b, "after": _errors(_with_bias(lt, 3, b), yt),
                   "train_errors_before": int((ltr.argmax(1) != y).sum()),
                   "train_errors_after": int((_with_bias(ltr, 3, b).argmax(1) != y).sum()),
                   "test_optimal_bias_for_reference": best_bias(lt, yt, 3, s["bias_grid"])}
            print(f"omit-3 seed {seed}: {row['before']['errors']} errors "
                  f"({row['before']['errors_on_3s']} on 3s); bias +{b}: {row['after']['errors']} "
                  f"({row['after']['errors_on_3s']} on 3s)", flush=True)
            return row

        # the label-trained students need no teacher: train them first
        runs = {"labels": [resume.get(f"labels/{q}", lambda q=q: student("labels", q))
                           for q in s["seeds"]]}
        teacher = kd.teacher.load_teacher(device="cpu")
        t_train, sec_train = timed(kd.evaluation.predict_logits, teacher, x)
        t_test = kd.evaluation.predict_logits(teacher, xt)
        res["teacher_errors"] = int((t_test.argmax(1) != yt).sum())
        res["teacher_train_errors"] = int((t_train.argmax(1) != y).sum())
        res["teacher_logits_seconds"] = round(sec_train, 1)
        print(f"teacher: {res['teacher_errors']} test errors", flush=True)
        runs["soft"] = [resume.get(f"soft/{q}", lambda q=q: student("soft", q))
                        for q in s["seeds"]]
        for name, rs in runs.items():
            res[name] = _summary([q["errors"] for q in rs])
            res[name]["runs"] = rs
            res[name]["seconds_per_run"] = round(statistics.mean(q["seconds"] for q in rs), 1)
        omit = [resume.get(f"omit3/{q}", lambda q=q: omit3(q)) for q in s["omit_seeds"]]
        res["omit3"] = {"runs": omit,
                        "before": _summary([q["before"]["errors"] for q in omit]),
                        "before_on_3s": _summary([q["before"]["errors_on_3s"] for q in omit]),
                        "after": _summary([q["after"]["errors"] for q in omit]),
                        "after_on_3s": _summary([q["after"]["errors_on_3s"] for q in omit]),
                        "after_3s_correct_pct": statistics.mean(
                            q["after"]["3s_correct_pct"] for q in omit),
                        "bias": statistics.mean(q["bias"] for q in omit)}
        res["resumed_runs"] = resume.reused
    resume.finish()
    return r.results


def rows(d: dict, results: dict | None = None) -> list[tuple]:
    """The results-table rows of hinton.json: the paper's counts as recorded, ours, compared.

    Inputs: d, the parsed hinton.json; results (all parsed JSON files by name) is not used.
    Returns: [(measurement, paper, this course, compared)], one per measurement.
    """
    r, p, s = d["results"], d["results"]["paper"], d["settings"]
    o = r["omit3"]
    removed_paper = 1 - p["soft_errors"] / p["labels_errors"]
    removed = 1 - r["soft"]["mean"] / r["labels"]["mean"]
    return [
        ("Teacher, test errors (of 10,000)", f"{p['teacher_errors']} (1200-1200 MLP, dropout)",
         f"{r['teacher_errors']} (our ResNet)",
         vs_paper(r["teacher_errors"], p["teacher_errors"]) + " (another teacher)"),
        ("784-800-800-10 MLP trained on labels", str(p["labels_errors"]), mean_std(r["labels"]),
         vs_paper(r["labels"]["mean"], p["labels_errors"])),
        (f"same MLP on soft targets, T = {s['T']:g}", str(p["soft_errors"]), mean_std(r["soft"]),
         vs_paper(r["soft"]["mean"], p["soft_errors"])),
        ("errors removed by soft targets (1 - soft / labels)", f"{removed_paper:.0%}",
         f"{removed:.0%}", vs_paper(round(removed, 2), round(removed_paper, 2),
                                    "errors removed")),
        ("distilled MLP that never saw a 3: errors (on 3s)",
         f"{p['omit3_errors']} ({p['omit3_errors_on_3s']})",
         f"{o['before']['mean']:.0f} ({o['before_on_3s']['mean']:.0f})",
         vs_paper(o["before"]["mean"], p["omit3_errors"])),
        ("... after raising the class-3 bias: errors (on 3s), 3s right",
         f"+{p['omit3_bias']} (on test): {p['omit3_bias_errors']} ({p['omit3_bias_errors_on_3s']}), "
         f"{p['omit3_bias_3s_correct_pct']}%",
         f"+{o['bias']:.1f} (on train): {o['after']['mean']:.0f} ({o['after_on_3s']['mean']:.0f}), "
         f"{o['after_3s_correct_pct']:.1f}%",
         vs_paper(o["after"]["mean"], p["omit3_bias_errors"])),
    ]


def conditions(d: dict) -> str:
    """The recipe of hinton.json for its conditions line: epochs, seeds, optimiser, seconds per run."""
    s = d["settings"]
    return (f"epochs {s['epochs']}, seeds {s['seeds']} (omit-3s: {s['omit_seeds']}), batch "
            f"{s['batch_size']}, {s['optimizer']} lr {s['lr']:g} cosine, alpha {s['alpha']:g}, "
            f"class-3 bias chosen on the training set; "
            f"{d['results']['soft']['seconds_per_run']:.0f} s per distilled run")


def main(argv=None) -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds of the two students")
    p.add_argument("--omit-seeds", type=int, nargs="+", default=None, help="seeds of omit-the-3s")
    a = p.parse_args(argv)
    set_threads(a.threads)
    run(a.budget, a.out, a.epochs, a.seeds, a.omit_seeds)


if __name__ == "__main__":
    main()
