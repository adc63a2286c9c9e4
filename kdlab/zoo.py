"""Lab 06's other teachers: early snapshots of the course's teacher and a small CNN teacher.

Each one ships in ``kdlab/assets/zoo/<name>/`` as ``teacher.pt`` + ``teacher.json`` (recipe,
seed, steps trained, test errors, sha256), verified before use like the course's teacher:

- ``resnet-step-NNNN``: the course's teacher (``kd.teacher``) after its first NNNN optimizer
  steps. They are made by re-running the teacher's own recipe (same seed, data order, shifts
  and one-cycle schedule) and saving the weights on the way. The script records whether the
  re-run lands on the test errors the shipped teacher recorded after each epoch, i.e. whether
  these are snapshots of that very run or of a twin (floating-point sums in another order, on
  another CPU or thread count, make a twin), and where the twin ends.
- ``tinycnn``: a ``kd.models.TinyCNN`` trained with the teacher's recipe (same data, shifts,
  optimizer and schedule): a teacher 43x smaller than the ResNet.

    names()                 # the names that ship, e.g. ['resnet-step-0100', ..., 'tinycnn']
    load("tinycnn")         # the model, eval mode, after checking its sha256
    metadata("tinycnn")     # its recipe, test errors, sha256, ...
    curve()                 # the re-run's test errors every few steps (a list of (step, errors))
    curve_report()          # all the script wrote about the re-run (is it the shipped run?)

Remake them (a few tens of minutes on one core; writes kdlab/assets/zoo/)::

    python -m kdlab.zoo --make [--out folder]
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import _args, data, evaluation, models, teacher, train

ASSETS = Path(__file__).resolve().parent / "assets" / "zoo"
CURVE = "resnet_curve.json"
SNAPSHOT_STEPS = (100, 938)           # 469 steps = one epoch of the teacher's recipe
EVAL_EVERY = 25                        # steps between two test evaluations of the re-run
SMALL = "tinycnn"


def snapshot_name(step: int) -> str:
    """The folder name of the snapshot after `step` optimizer steps: 'resnet-step-0469'."""
    return f"resnet-step-{int(step):04d}"


def names(folder: Path = ASSETS) -> list[str]:
    """The teachers that ship in `folder`: snapshots by step, then the small teacher."""
    folder = Path(folder)
    found = sorted(p.name for p in folder.iterdir() if (p / teacher.METADATA).exists()) \
        if folder.exists() else []
    return [n for n in found if n.startswith("resnet-step-")] + [n for n in found if n == SMALL]


def metadata(name: str, folder: Path = ASSETS) -> dict:
    """The metadata JSON of teacher `name` (recipe, steps, test errors, sha256, ...)."""
    if name not in names(folder):
        raise teacher.CheckpointError(
            f"no teacher {name!r} in {folder}; the zoo holds {names(folder)}. Reinstall the "
            "course (`make install`) or remake them: python -m kdlab.zoo --make")
    return teacher.metadata(Path(folder) / name)


def load(name: str, folder: Path = ASSETS, device=None) -> torch.nn.Module:
    """Teacher `name` in eval mode, after checking its checkpoint's sha256.

    Inputs: name from ``names()``; device (default: kd.runtime.device()).
    Returns: a model mapping x (N, 1, 28, 28) to logits (N, 10).
    """
    metadata(name, folder)  # a clear error for an unknown name
    return teacher.load_teacher(Path(folder) / name, device=device)


def curve_report(folder: Path = ASSETS) -> dict:
    """What the snapshot script wrote about its re-run of the teacher's recipe (a dict).

    Keys: recipe, steps_per_epoch, eval_every, test_errors ([step, errors] pairs),
    snapshots ({name: test errors}), shipped_teacher, epoch_errors_rerun_vs_shipped
    ({epoch: [re-run, shipped]}), same_run_as_shipped (bool), train_seconds, threads, ...
    """
    path = Path(folder) / CURVE
    if not path.exists():
        raise teacher.CheckpointError(f"{path} is missing; remake it: python -m kdlab.zoo --make")
    return json.loads(path.read_text())


def curve(folder: Path = ASSETS) -> list[tuple[int, int]]:
    """The re-run's test errors (of 10,000) during training: [(step, errors), ...]."""
    return [tuple(p) for p in curve_report(folder)["test_errors"]]


# ------------------------------------------------------------------ the script that makes them


def _stream(batches, epochs: int):
    """The batches of `epochs` passes over `batches`, one after the other (as fit sees them)."""
    for _ in range(epochs):
        yield from batches


def _save(model, out: Path, meta: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / teacher.CHECKPOINT)
    meta = {**meta, "params": models.num_params(model),
            "sha256": teacher._sha256(out / teacher.CHECKPOINT)}
    (out / teacher.METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _facts() -> dict:
    return {"threads": torch.get_num_threads(), "machine": platform.machine(),
            "torch": torch.__version__}


def make_snapshots(out: Path = ASSETS, steps=SNAPSHOT_STEPS, eval_every: int = EVAL_EVERY,
                   to_end: bool = True, progress: bool = True) -> dict:
    """Re-run the teacher's recipe; save a snapshot after each of `steps` optimizer steps.

    The test errors are measured every `eval_every` steps (evaluation does not change the
    run); with `to_end` the run goes on to the recipe's last step, so that the curve shows the
    whole training and where the re-run ends (its last weights are not saved). Writes
    ``out/<snapshot_name(step)>/`` for every step and ``out/resnet_curve.json`` (rewritten
    after every snapshot, so a run stopped later keeps what it made); returns the curve's JSON.
    """
    out = _args.path("out", out, "'my-zoo'")
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
        raise TypeError(f"steps must be optimizer steps (whole numbers >= 1), e.g. (100, 938), "
                        f"got {_args.kind(steps)}")
    steps = sorted({_args.whole("each of steps", s) for s in steps})
    if not steps:
        raise ValueError("steps is empty: give the optimizer steps to save, e.g. (100, 938)")
    eval_every = _args.whole("eval_every", eval_every)
    to_end, progress = _args.flag("to_end", to_end), _args.flag("progress", progress)
    recipe = dict(teacher.RECIPE)
    model, batches, opt, sched = teacher.setup(recipe)
    xt, yt = data.mnist("test")
    shipped = teacher.metadata()
    per_epoch = len(batches)
    total = recipe["epochs"] * per_epoch
    last = total if to_end else max(steps)
    if max(steps) > total:
        raise ValueError(f"the recipe has {total} steps; asked for {max(steps)}")
    stops = sorted(set(range(eval_every, last + 1, eval_every)) | set(steps)
                   | {e * per_epoch for e in range(1, recipe["epochs"] + 1) if e * per_epoch <= last})
    stream = _stream(batches, recipe["epochs"])
    done, seconds, points, saved = 0, 0.0, [(0, evaluation.evaluate(model, xt, yt)["errors"])], {}

    def report() -> dict:
        by_step = dict(points)
        same = {e + 1: (by_step[(e + 1) * per_epoch], shipped["val_errors_per_epoch"][e])
                for e in range(recipe["epochs"]) if (e + 1) * per_epoch in by_step}
        rep = {"recipe": recipe, "steps_per_epoch": per_epoch, "eval_every": eval_every,
               "test_errors": points, "snapshots": {k: v["test_errors"] for k, v in saved.items()},
               "shipped_teacher": {"sha256": shipped["sha256"],
                                   "test_errors": shipped["test_errors"],
                                   "val_errors_per_epoch": shipped["val_errors_per_epoch"]},
               "epoch_errors_rerun_vs_shipped": {str(k): list(v) for k, v in same.items()},
               "same_run_as_shipped": bool(same) and all(a == b for a, b in same.values()),
               "complete": done == last, "train_seconds": round(seconds, 1), **_facts()}
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / CURVE).write_text(json.dumps(rep, indent=2) + "\n")
        return rep

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last, desc="teacher re-run", unit="step")
    for stop in stops:
        segment = list(itertools.islice(stream, stop - done))
        t0 = time.perf_counter()
        train.fit(model, segment, F.cross_entropy, 1, optimizer=opt, scheduler=sched,
                  progress=False)
        seconds += time.perf_counter() - t0
        done = stop
        errors = evaluation.evaluate(model, xt, yt)["errors"]
        points.append((done, errors))
        if bar is not None:
            bar.update(len(segment))
            bar.set_postfix(step=done, test_errors=errors)
        if done in steps:
            saved[snapshot_name(done)] = _save(model, Path(out) / snapshot_name(done), {
                "recipe": {**recipe, "steps": done, "of_steps": total,
                           "made_by": "python -m kdlab.zoo --make"},
                "of": f"a re-run of kdlab.teacher's recipe (the shipped teacher: sha256 "
                      f"{shipped['sha256'][:16]}...)",
                "test_errors": errors, "test_accuracy": 1 - errors / len(yt),
                "train_seconds": round(seconds, 1), **_facts()})
            report()
    if bar is not None:
        bar.close()
    return report()


def make_small(out: Path = ASSETS, progress: bool = True) -> dict:
    """Train the small teacher (TinyCNN) with the teacher's recipe; save it; return metadata."""
    out = _args.path("out", out, "'my-zoo'")
    _args.flag("progress", progress)
    recipe = {**teacher.RECIPE, "architecture": "kdlab.models.TinyCNN",
              "made_by": "python -m kdlab.zoo --make"}
    recipe.pop("width")
    model, batches, opt, sched = teacher.setup(recipe)
    xt, yt = data.mnist("test")
    t0 = time.perf_counter()
    hist = train.fit(model, batches, F.cross_entropy, recipe["epochs"], optimizer=opt,
                     scheduler=sched, val=(xt, yt), progress=progress, desc=SMALL)
    seconds = time.perf_counter() - t0
    errors = evaluation.evaluate(model, xt, yt)["errors"]
    return _save(model, Path(out) / SMALL, {
        "recipe": recipe, "test_errors": errors, "test_accuracy": 1 - errors / len(yt),
        "val_errors_per_epoch": hist["val_errors"], "train_seconds": round(seconds, 1),
        **_facts()})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m kdlab.zoo", description=__doc__.split("\n")[0])
    p.add_argument("--make", action="store_true", help="train and write the zoo")
    p.add_argument("--only", choices=("snapshots", "small"), default=None)
    p.add_argument("--steps", type=int, nargs="+", default=list(SNAPSHOT_STEPS))
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    p.add_argument("--not-to-end", action="store_true",
                   help="stop the re-run at the last snapshot (the curve then ends there)")
    p.add_argument("--out", type=Path, default=ASSETS)
    args = p.parse_args(argv)
    if args.make:
        if args.only in (None, "small"):
            meta = make_small(args.out)
            print(f"{SMALL}: {meta['test_errors']} test errors, {meta['train_seconds']:.0f} s")
        if args.only in (None, "snapshots"):
            rep = make_snapshots(args.out, args.steps, args.eval_every, not args.not_to_end)
            print(json.dumps({k: rep[k] for k in ("snapshots", "epoch_errors_rerun_vs_shipped",
                                                  "same_run_as_shipped", "train_seconds")}, indent=2))
    for name in names(args.out):
        load(name, args.out, device="cpu")
        print(f"{name}: verified, {metadata(name, args.out)['test_errors']} test errors")


if __name__ == "__main__":
    main()
