"""Lab 07's shipped teacher: a character-level GPT-2 trained on Tiny Shakespeare, verified.

It ships in ``kdlab/assets/lm_teacher/`` as ``teacher.pt`` (the state dict) and
``teacher.json`` (config, recipe, seed, validation nats per character, train time, sha256);
``load()`` checks the checkpoint's sha256 before building the model.

    teacher = kd.lm_zoo.load()          # GPT2LMHeadModel, eval mode
    kd.lm_zoo.metadata()["val_nats_per_char"]

Remake it (about one minute of CPU time on one thread, 300 steps; writes kdlab/assets/lm_teacher/)::

    python -m kdlab.lm_zoo --make [--out folder] [--steps N]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
from pathlib import Path

import torch

from . import _args, lm, text
from .data import _digest, verify_file
from .teacher import CheckpointError

ASSETS = Path(__file__).resolve().parent / "assets" / "lm_teacher"
CHECKPOINT, METADATA = "teacher.pt", "teacher.json"
RECIPE = {
    "architecture": "transformers.GPT2LMHeadModel, kdlab.lm.SIZES['teacher'], no dropout",
    "data": "Tiny Shakespeare, train split (first 90%, 1,003,854 characters)",
    "steps": 2400, "batch_size": 12, "block": lm.BLOCK, "lr": 3e-3, "warmup": 100,
    "optimizer": "AdamW (weight decay 0.1, betas 0.9, 0.99), grad norm clipped at 1",
    "schedule": "linear warm-up, cosine decay to 0.1 x lr",
    "seed": 0, "threads": 1,
    "made_by": "python -m kdlab.lm_zoo --make",
}
FIX = "Reinstall the course (`make install`) or remake it: python -m kdlab.lm_zoo --make"


def metadata(folder: Path = ASSETS) -> dict:
    """The teacher's metadata (config, recipe, val_nats_per_char, sha256, ...)."""
    path = Path(folder) / METADATA
    if not path.exists():
        raise CheckpointError(f"Lab 07's teacher metadata missing: {path}. {FIX}")
    return json.loads(path.read_text())


def load(folder: Path = ASSETS):
    """The shipped teacher in eval mode, after checking its checkpoint's sha256.

    Returns: a GPT2LMHeadModel mapping input_ids (N, L <= 128) to logits (N, L, 65).
    """
    folder = _args.path("folder", folder, "kd.lm_zoo.ASSETS")
    from transformers import GPT2Config, GPT2LMHeadModel

    meta = metadata(folder)
    ckpt = folder / CHECKPOINT
    verify_file(ckpt, meta["sha256"], "Lab 07's teacher checkpoint", FIX, CheckpointError, METADATA)
    model = GPT2LMHeadModel(GPT2Config(**meta["config"]))
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    return model.eval()


def make(out: Path = ASSETS, steps: int | None = None, progress: bool = True) -> dict:
    """Train the teacher with RECIPE (seeded, 2 threads), save it and its metadata; return it."""
    out = _args.path("out", out, "'my-lm-teacher'")
    recipe = dict(RECIPE)
    if steps is not None:
        recipe["steps"] = _args.whole("steps", steps)
    _args.flag("progress", progress)
    torch.set_num_threads(recipe["threads"])
    model = lm.build("teacher", seed=recipe["seed"], block=recipe["block"])

    def show(step, loss):
        if progress and (step % 25 == 0 or step == recipe["steps"] - 1):
            print(f"step {step:4d}  train loss {loss:.3f}", flush=True)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    hist = lm.train_lm(model, text.ids("train"), recipe["steps"], recipe["batch_size"],
                       recipe["lr"], recipe["seed"], recipe["warmup"], recipe["block"], show)
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    val = lm.nats_per_char(model, text.ids("val"), recipe["block"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / CHECKPOINT)
    cfg = {k: v for k, v in model.config.to_dict().items()
           if k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "resid_pdrop",
                    "embd_pdrop", "attn_pdrop", "bos_token_id", "eos_token_id", "pad_token_id")}
    meta = {"config": cfg, "recipe": recipe, "params": lm.num_params(model),
            "val_nats_per_char": round(val, 4),
            "val_note": "mean cross-entropy over the whole validation split (111,540 characters) "
                        "cut into non-overlapping windows of 128 (kd.lm.nats_per_char)",
            "final_train_loss": round(sum(hist["losses"][-20:]) / 20, 4),
            "train_seconds_wall": round(hist["seconds"], 1), "train_seconds_cpu": round(cpu, 1),
            "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "transformers": __import__("transformers").__version__,
            "sha256": _digest(out / CHECKPOINT)}
    (out / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m kdlab.lm_zoo", description=__doc__.split("\n")[0])
    p.add_argument("--make", action="store_true", help="train and write the teacher")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", type=Path, default=ASSETS)
    args = p.parse_args(argv)
    if args.make:
        meta = make(args.out, args.steps)
        print(json.dumps({k: meta[k] for k in ("params", "val_nats_per_char",
                                               "train_seconds_wall", "train_seconds_cpu")}))
    load(args.out)
    print(f"verified: {args.out / CHECKPOINT}, {metadata(args.out)['val_nats_per_char']} nats/char")


if __name__ == "__main__":
    main()
