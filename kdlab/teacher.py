"""The shipped pretrained teacher: load it, verify it, or retrain it reproducibly.

``load_teacher()`` returns the ``kd.models.Teacher`` ResNet with the weights that ship in
``kdlab/assets/teacher`` (checkpoint + metadata JSON: recipe, seed, accuracy, sha256).

Retrain (overwrites the shipped checkpoint unless --out is given)::

    python -m kdlab.teacher --retrain
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data, models, train

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


def load_teacher(folder: Path = ASSETS, device=None) -> models.Teacher:
    """The pretrained teacher in eval mode, after checking the checkpoint's sha256.

    Inputs: folder holding teacher.pt and teacher.json; device (default: kd.train.device()).
    Returns: a ``Teacher`` mapping x (N, 1, 28, 28) to logits (N, 10).
    """
    folder = Path(folder)
    meta = metadata(folder)
    ckpt = folder / CHECKPOINT
    fix = "Reinstall the course (`make install`) or retrain: python -m kdlab.teacher --retrain"
    if not ckpt.exists():
        raise CheckpointError(f"teacher checkpoint missing: {ckpt}. {fix}")
    got = _sha256(ckpt)
    if got != meta["sha256"]:
        raise CheckpointError(f"teacher checkpoint corrupted: {ckpt} has sha256 {got}, "
                              f"expected {meta['sha256']} (from {METADATA}). {fix}")
    model = models.Teacher(width=meta["recipe"]["width"])
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {ckpt} does not match the Teacher architecture "
                              f"(width={meta['recipe']['width']}): {e}") from None
    return model.to(device if device is not None else train.device()).eval()


def shift(x: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random offset of up to `pixels` in x and y.

    Input x: (N, 1, H, W) normalised. Returns (N, 1, H, W), background filled with the
    normalised value of a black pixel.
    """
    n, _, h, w = x.shape
    offs = (torch.rand(n, 2, generator=generator) * 2 - 1) * pixels
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = offs[:, 0] * 2 / w
    theta[:, 1, 2] = offs[:, 1] * 2 / h
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    black = -data.MEAN / data.STD
    return F.grid_sample(x - black, grid, align_corners=False) + black


class _Augmented:
    """Batches with random translation applied on the fly (seeded)."""

    def __init__(self, batches: data.Batches, pixels: float, seed: int):
        self.batches, self.pixels = batches, pixels
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for x, y, idx in self.batches:
            yield shift(x, self.pixels, self.g), y, idx


def retrain(out: Path = ASSETS, epochs: int | None = None, progress: bool = True) -> dict:
    """Train the teacher with RECIPE, save checkpoint + metadata to `out`, return metadata."""
    recipe = dict(RECIPE)
    if epochs is not None:
        recipe["epochs"] = epochs
    train.seed(recipe["seed"])
    x, y = data.mnist("train")
    xt, yt = data.mnist("test")
    model = models.Teacher(width=recipe["width"])
    batches = _Augmented(data.Batches(x, y, recipe["batch_size"], seed=recipe["seed"]), 2.0,
                         recipe["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"],
                                                total_steps=recipe["epochs"] * len(batches))

    def loss_fn(out, labels):
        return F.cross_entropy(out, labels)

    t0 = time.perf_counter()
    hist = train.fit(model, batches, loss_fn, recipe["epochs"], optimizer=opt, scheduler=sched,
                     val=(xt, yt), progress=progress, desc="teacher")
    seconds = time.perf_counter() - t0
    res = train.evaluate(model, xt, yt)
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
