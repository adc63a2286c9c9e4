"""The shipped pretrained teacher: load it, verify it, or retrain it reproducibly.

``load_teacher()`` returns the ``kd.models.Teacher`` ResNet with the weights that ship in
``kdlab/assets/teacher`` (checkpoint + metadata JSON: recipe, seed, accuracy, sha256).

``mnist_logits(split)`` returns the teacher's logits for a whole MNIST split, computed once and
then read from a cache file in the kdlab cache folder (``$KDLAB_CACHE``, default
``~/.cache/kdlab``, see ``kd.data.cache_dir``), keyed by the checkpoint's sha256: a retrained
teacher gets new logits, and a corrupted or mismatched cache file is recomputed.

Retrain (overwrites the shipped checkpoint unless --out is given)::

    python -m kdlab.teacher --retrain
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import _args, cache, data, evaluation, models, runtime, train
from .views import Jittered

ASSETS = Path(__file__).resolve().parent / "assets" / "teacher"
CHECKPOINT, METADATA = "teacher.pt", "teacher.json"
RECIPE = {
    "architecture": "kdlab.models.Teacher",
    "width": 24,
    "optimizer": "Adam",
    "lr": 2e-3,
    "schedule": "OneCycleLR (cosine), per step",
    "batch_size": 128,
    "epochs": 4,
    "augmentation": "random translation up to 2 px (per image, bilinear)",
    "seed": 0,
    "data": "MNIST train 60,000 (bundled)",
}


class CheckpointError(RuntimeError):
    """The teacher checkpoint is missing, corrupted or does not fit the architecture."""


def _sha256(path: Path) -> str:
    return data._digest(path)


def metadata(folder: Path = ASSETS) -> dict:
    """The metadata JSON of the checkpoint in `folder` (recipe, accuracy, sha256, ...)."""
    path = Path(folder) / METADATA
    if not path.exists():
        raise CheckpointError(f"teacher metadata missing: {path}. Reinstall the course "
                              "(`make install`) or retrain: python -m kdlab.teacher --retrain")
    return json.loads(path.read_text())


def load_teacher(folder: Path = ASSETS, device=None) -> torch.nn.Module:
    """The pretrained teacher in eval mode, after checking the checkpoint's sha256.

    Inputs: folder holding teacher.pt and teacher.json; device (default: kd.runtime.device()).
    Returns: a ``Teacher`` mapping x (N, 1, 28, 28) to logits (N, 10).
    """
    folder = _args.path("folder", folder, "kd.teacher.ASSETS")
    _device(device)
    meta = metadata(folder)
    ckpt = folder / CHECKPOINT
    fix = "Reinstall the course (`make install`) or retrain: python -m kdlab.teacher --retrain"
    data.verify_file(ckpt, meta["sha256"], "teacher checkpoint", fix, CheckpointError, METADATA)
    model = build(meta["recipe"])
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        kw = f"width={meta['recipe']['width']}" if "width" in meta["recipe"] else "default size"
        raise CheckpointError(f"checkpoint {ckpt} does not match the {type(model).__name__} "
                              f"architecture ({kw}): {e}") from None
    return model.to(device if device is not None else runtime.device()).eval()


def _device(device) -> None:
    """TypeError unless `device` is None, a torch.device or its name ("cpu", "cuda:0", ...)."""
    if not (device is None or isinstance(device, (str, torch.device))):
        raise TypeError(f"device must be None (kd.runtime.device()), a torch.device or a name such "
                        f"as 'cpu', got {_args.kind(device)}")


def _positions(indices) -> bool:
    """True if `indices` are (K,) whole positions (a tensor, array or list of ints)."""
    try:
        idx = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError):
        return False
    return idx.dim() == 1 and not (idx.is_floating_point() or idx.is_complex())


def build(recipe: dict) -> torch.nn.Module:
    """A fresh model of the recipe's architecture ("kdlab.models.<Class>", optional width)."""
    name = recipe["architecture"]
    cls = getattr(models, name.rpartition(".")[2], None) if name.startswith("kdlab.models.") else None
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise CheckpointError(f"unknown architecture {name!r} in the recipe")
    return cls(width=recipe["width"]) if "width" in recipe else cls()


# ------------------------------------------------------------------ teacher logits, cached on disk

LOGITS_FOLDER = "teacher-logits"


class TeacherLogits(NamedTuple):
    """The teacher's logits and where they came from (``fetch_logits``'s result).

    - logits: (N, 10) float32 on the CPU
    - source: "cache" (read from the disk cache), "computed" (then cached) or "subset"
      (computed for the given indices only, not cached)
    - seconds: time spent computing them (0.0 for a cache read)
    - path: the cache file ("" for a subset)
    """
    logits: torch.Tensor
    source: str
    seconds: float
    path: str


def logits_cache_path(split: str, sha256: str) -> Path:
    """The cache file of the teacher's logits for `split`: <cache>/teacher-logits/<sha>-<split>.pt."""
    return cache.path(LOGITS_FOLDER, f"{sha256[:16]}-{split}.pt")


def _read_logits_cache(path: Path, sha256: str, split: str, n: int) -> tuple:
    """(logits or None, why not): the cached logits if the file is whole and fits this teacher."""
    blob, why = cache.read(path)
    if blob is None:
        return None, why
    if not torch.is_tensor(blob.get("logits")):
        return None, "not a teacher-logits file"
    logits = blob["logits"]
    if blob.get("sha256") != sha256:
        return None, f"made by another checkpoint (sha256 {str(blob.get('sha256'))[:16]}...)"
    if blob.get("split") != split or tuple(logits.shape) != (n, 10) or logits.dtype != torch.float32:
        return None, (f"holds {blob.get('split')!r} logits of shape {tuple(logits.shape)}, "
                      f"expected {split!r} ({n}, 10) float32")
    if blob.get("digest") != cache.digest(logits):
        return None, "its values do not match their recorded digest (corrupted)"
    return logits, ""


def mnist_logits(split: str = "train", teacher: torch.nn.Module | None = None, indices=None,
                 folder: Path = ASSETS, progress: bool = True, verbose: bool = True) -> torch.Tensor:
    """The teacher's logits for a whole MNIST split: ``fetch_logits(...).logits``, same inputs.

    Returns: (N, 10) float32 logits on the CPU, row i for image i of ``kd.data.mnist(split)``
    (or (K, 10) for `indices`).
    """
    return fetch_logits(split, teacher, indices, folder, progress, verbose).logits


def fetch_logits(split: str = "train", teacher: torch.nn.Module | None = None, indices=None,
                 folder: Path = ASSETS, progress: bool = True, verbose: bool = True) -> TeacherLogits:
    """The teacher's logits for a whole MNIST split, from the disk cache or computed once.

    Inputs:
    - split: "train" (60,000 images) or "test" (10,000 images), normalised as ``kd.data.mnist``
    - teacher: the loaded teacher (default: ``load_teacher(folder)``); it must be the
      checkpoint in `folder`, whose sha256 keys the cache
    - indices: optional (K,) positions in the split: return only those rows. Without a valid
      cache only these K images go through the teacher, and nothing is cached (the quick
      budget stays quick); the cache is made by a call for the whole split.
    - progress: progress bar while computing; verbose: print where the logits came from
    Returns: ``TeacherLogits(logits, source, seconds, path)``: logits (N, 10) float32 on the
    CPU, row i for image i of ``kd.data.mnist(split)`` (or (K, 10) for `indices`), and where
    they came from ("cache", "computed" or "subset"), so that a notebook can report it.

    The cache file is ``logits_cache_path(split, sha256)``. It is written atomically after
    the first computation; a file that is unreadable, made by another checkpoint, of the
    wrong shape, or whose values fail their digest is reported and recomputed.
    """
    if not (isinstance(split, str) and split in data.FILES):
        raise ValueError(f"split must be 'train' or 'test', got {_args.kind(split)}")
    if not (teacher is None or isinstance(teacher, torch.nn.Module)):
        raise TypeError(f"teacher must be None (load the one in `folder`) or the loaded teacher "
                        f"(a torch.nn.Module, e.g. kd.teacher.load_teacher()), got {_args.kind(teacher)}")
    if indices is not None and not _positions(indices):
        raise TypeError(f"indices must be None (the whole split) or (K,) whole positions in the "
                        f"split, e.g. torch.arange(100), got {_args.kind(indices)}")
    folder = _args.path("folder", folder, "kd.teacher.ASSETS")
    _args.flag("progress", progress)
    _args.flag("verbose", verbose)
    sha = _sha256(folder / CHECKPOINT) if (folder / CHECKPOINT).exists() else metadata(folder)["sha256"]
    x, _ = data.mnist(split)
    path = logits_cache_path(split, sha)
    logits, why = _read_logits_cache(path, sha, split, len(x))
    if logits is not None:
        if verbose:
            print(f"teacher logits ({split}, {len(x):,} images): read from the cache {path}")
        logits = logits if indices is None else logits[torch.as_tensor(indices)]
        return TeacherLogits(logits, "cache", 0.0, str(path))
    if verbose and path.exists():
        print(f"teacher logits cache {path} is not usable: {why}; recomputing it")
    if teacher is None:
        teacher = load_teacher(folder)
    t0 = time.perf_counter()
    if indices is not None:
        idx = torch.as_tensor(indices)
        logits = evaluation.predict_logits(teacher, x[idx], progress=progress).float()
        seconds = time.perf_counter() - t0
        if verbose:
            print(f"teacher logits ({split}, {len(idx):,} of {len(x):,} images): computed in "
                  f"{seconds:.1f} s (a subset: not cached)")
        return TeacherLogits(logits, "subset", seconds, "")
    logits = evaluation.predict_logits(teacher, x, progress=progress).float().contiguous()
    seconds = time.perf_counter() - t0
    where = cache.write(path, {"sha256": sha, "split": split, "digest": cache.digest(logits),
                               "logits": logits})
    if verbose:
        print(f"teacher logits ({split}, {len(x):,} images): computed in {seconds:.1f} s, {where}")
    return TeacherLogits(logits, "computed", seconds, str(path))


def setup(recipe: dict = RECIPE) -> tuple:
    """The start of a training run of `recipe`: seeded model, shifted batches, Adam, one-cycle.

    Returns (model, batches, optimizer, scheduler); the batches yield the 60,000 training
    images shifted by up to 2 px, and the schedule spans recipe["epochs"] passes over them.
    Used by ``retrain`` and by ``kd.zoo`` (snapshots of this very run, a smaller teacher).
    """
    if not (isinstance(recipe, dict) and {"seed", "batch_size", "lr", "epochs", "architecture"}
            <= set(recipe)):
        raise TypeError(f"recipe must be a dict like kd.teacher.RECIPE (with seed, batch_size, lr, "
                        f"epochs and architecture), got {_args.kind(recipe)}")
    runtime.seed(recipe["seed"])
    x, y = data.mnist("train")
    model = build(recipe)
    batches = Jittered(data.Batches(x, y, recipe["batch_size"], seed=recipe["seed"]), 2.0,
                       recipe["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"],
                                                total_steps=recipe["epochs"] * len(batches))
    return model, batches, opt, sched


def retrain(out: Path = ASSETS, epochs: int | None = None, progress: bool = True) -> dict:
    """Train the teacher with RECIPE, save checkpoint + metadata to `out`, return metadata."""
    out = _args.path("out", out, "'my-teacher'")
    recipe = dict(RECIPE)
    if epochs is not None:
        recipe["epochs"] = _args.whole("epochs", epochs)
    _args.flag("progress", progress)
    model, batches, opt, sched = setup(recipe)
    xt, yt = data.mnist("test")

    def loss_fn(out, labels):
        return F.cross_entropy(out, labels)

    t0 = time.perf_counter()
    hist = train.fit(model, batches, loss_fn, recipe["epochs"], optimizer=opt, scheduler=sched,
                     val=(xt, yt), progress=progress, desc="teacher")
    seconds = time.perf_counter() - t0
    res = evaluation.evaluate(model, xt, yt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / CHECKPOINT)
    meta = {
        "recipe": recipe,
        "test_errors": res["errors"],
        "test_accuracy": res["accuracy"],
        "val_errors_per_epoch": hist["val_errors"],
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "params": models.num_params(model),
        "sha256": _sha256(out / CHECKPOINT),
    }
    (out / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m kdlab.teacher", description=__doc__.split("\n")[0])
    p.add_argument("--retrain", action="store_true", help="train the teacher from scratch")
    p.add_argument("--epochs", type=int, default=None, help=f"default {RECIPE['epochs']}")
    p.add_argument("--out", type=Path, default=ASSETS, help="folder for teacher.pt/.json")
    args = p.parse_args(argv)
    if args.retrain:
        meta = retrain(args.out, args.epochs)
    else:
        meta = metadata(args.out)
        load_teacher(args.out)
    print(json.dumps({k: v for k, v in meta.items() if k != "recipe"}, indent=2))


if __name__ == "__main__":
    main()
