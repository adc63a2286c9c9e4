"""Tiny character-level GPT-2 models (Hugging Face transformers) and their measures (Lab 07).

The models are ``transformers.GPT2LMHeadModel`` at tiny sizes, built from a config here, so
that ``Trainer``, ``generate()`` and the rest of the ecosystem work unchanged; no weights are
ever fetched (the import sets ``HF_HUB_OFFLINE=1``).

    teacher = kd.lm.build("teacher")            # 0.82M parameters, untrained
    student = kd.lm.build("student", seed=0)    # 0.11M parameters, same init for a seed
    kd.lm.nats_per_char(student, kd.text.ids("val"))
    kd.lm.sample(student, n=4, length=200, seed=0)   # (4, 200) int64 ids
"""
from __future__ import annotations

import gc
import math
import os
import time

import torch
import torch.nn.functional as F

from . import text

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BLOCK = 128  # the context length of every model of the lab
SIZES = {
    "teacher": dict(n_embd=128, n_layer=4, n_head=4),
    "student": dict(n_embd=64, n_layer=2, n_head=4),
}


def config(size: str | dict = "student", vocab_size: int | None = None, block: int = BLOCK):
    """A ``GPT2Config`` of one of SIZES (or a dict of n_embd, n_layer, n_head), no dropout."""
    from transformers import GPT2Config

    dims = SIZES[size] if isinstance(size, str) else dict(size)
    if isinstance(size, str) and size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)} or a dict, got {size!r}")
    return GPT2Config(vocab_size=vocab_size or len(text.vocab()), n_positions=block, **dims,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)


def build(size: str | dict = "student", seed: int | None = 0, vocab_size: int | None = None,
          block: int = BLOCK):
    """A fresh ``GPT2LMHeadModel`` of `size`; the same `seed` gives the same initial weights.

    Returns: a model mapping input_ids (N, L) int64 to ``.logits`` (N, L, vocab) float32.
    """
    from transformers import GPT2LMHeadModel

    cfg = config(size, vocab_size, block)
    if seed is None:
        return GPT2LMHeadModel(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(cfg)


def num_params(model: torch.nn.Module) -> int:
    """The number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def nats_per_char(model, ids: torch.Tensor, block: int = BLOCK, max_chars: int | None = None,
                  batch_size: int = 64) -> float:
    """The model's mean cross-entropy (nats per character) on the ids (L,).

    The ids are cut into non-overlapping windows of `block` (with max_chars, only the first
    max_chars are used); every character but the first of a window is predicted from the
    ones before it in its window. Returns: a float (ln 65 = 4.17 for a uniform guess).
    """
    was = model.training
    model.eval()
    x = text.chunks(ids, block, max_chars)
    total, count = 0.0, 0
    for i in range(0, len(x), batch_size):
        b = x[i:i + batch_size]
        logits = model(input_ids=b).logits[:, :-1]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                 b[:, 1:].reshape(-1), reduction="sum").item()
        count += b[:, 1:].numel()
    model.train(was)
    return total / count


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy: logits (N, L, V) at position t predict input_ids[:, t + 1].

    Positions whose target is masked out (attention_mask 0) are left out. Returns: a scalar.
    """
    target = input_ids[:, 1:]
    keep = torch.ones_like(target, dtype=torch.bool) if attention_mask is None \
        else attention_mask[:, 1:].bool()
    return F.cross_entropy(logits[:, :-1][keep], target[keep])


@torch.no_grad()
def sample(model, n: int = 4, length: int = 200, seed: int = 0, prompt: str = "\n",
           temperature: float = 1.0) -> torch.Tensor:
    """`n` continuations of `prompt` of `length` characters, sampled with ``generate()``.

    Sampling is seeded (torch's global generator is saved and restored around it).
    Returns: (n, length) int64 ids (the prompt left out).
    """
    if length + len(prompt) > model.config.n_positions:
        raise ValueError(f"prompt + length must fit the context of {model.config.n_positions}")
    was = model.training
    model.eval()
    start = text.vocab().encode(prompt).repeat(n, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(start, attention_mask=torch.ones_like(start), do_sample=True,
                             max_new_tokens=length, min_new_tokens=length, top_k=0,
                             temperature=temperature, pad_token_id=0)
    model.train(was)
    return out[:, len(prompt):]


def distinct_ngrams(ids: torch.Tensor, n: int = 4) -> float:
    """The share of distinct n-grams among all n-grams of the rows of ids (S, L): in [0, 1]."""
    grams = [tuple(row[i:i + n]) for row in ids.tolist() for i in range(len(row) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def char_entropy(ids: torch.Tensor, vocab_size: int | None = None) -> float:
    """The entropy (nats) of the characters' frequencies in ids (any shape)."""
    counts = torch.bincount(ids.flatten(), minlength=vocab_size or len(text.vocab())).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


@torch.no_grad()
def score(model, ids: torch.Tensor, prompt: str = "\n") -> float:
    """Nats per character that `model` gives to the sampled rows ids (S, L) after `prompt`.

    With the teacher as `model` and a student's samples as ids: how much the teacher
    "agrees" with what the student writes (low: text the teacher finds likely).
    """
    was = model.training
    model.eval()
    start = text.vocab().encode(prompt).repeat(len(ids), 1)
    full = torch.cat([start, ids], 1)
    logits = model(input_ids=full).logits[:, len(prompt) - 1:-1]
    out = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), ids.reshape(-1)).item()
    model.train(was)
    return out


def train_lm(model, ids: torch.Tensor, steps: int, batch_size: int = 32, lr: float = 3e-3,
             seed: int = 0, warmup: int = 50, block: int = BLOCK, progress=None) -> dict:
    """Train `model` on next-character prediction: AdamW, linear warm-up then cosine decay.

    Inputs: ids (L,) the training text; steps; batch_size windows of `block` per step, drawn
    by ``kd.text.windows(ids, block, batch_size, steps, seed)``; progress: a callable
    (step, loss) or None. Returns: {"losses": [...], "seconds": float}.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.99))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    losses, t0 = [], time.perf_counter()
    for step, x in enumerate(text.windows(ids, block, batch_size, steps, seed)):
        loss = lm_loss(model(input_ids=x).logits, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - t0}


def window_dataset(ids: torch.Tensor, block: int = BLOCK, stride: int = 32) -> list:
    """Windows of `block` ids starting every `stride` ids of ids (L,), as a Trainer dataset.

    Returns: a list of {"input_ids", "attention_mask", "labels"} (each (block,) int64; no
    padding, so the mask is all ones and the labels are the ids: the model shifts them).
    """
    starts = range(0, len(ids) - block + 1, stride)
    return [{"input_ids": ids[s:s + block], "attention_mask": torch.ones(block, dtype=torch.long),
             "labels": ids[s:s + block]} for s in starts]


_FROZEN = False


def _freeze_long_lived() -> None:
    """Collect once, then leave every object alive now out of the garbage collector's scans.

    ``Trainer.train()`` starts with a full collection (accelerate's ``free_memory``), which
    otherwise walks every object of torch and transformers, a few hundred thousand: about
    0.2-0.6 s of CPU per training run, more than a short run's training. Frozen objects
    (modules, the teacher) are still freed by reference counting; only a cycle among them that
    dies later stays in memory. Once per process."""
    global _FROZEN
    if not _FROZEN:
        _FROZEN = True
        gc.collect()
        gc.freeze()


def training_args(steps: int, seed: int = 0, batch_size: int = 16, lr: float = 3e-3, **extra):
    """``transformers.TrainingArguments`` for a short CPU run of `steps` optimizer steps.

    AdamW (weight decay 0.1), warm-up over the first 10% then cosine decay, gradients clipped
    at 1, `seed` for the data order, nothing logged, saved or reported; a fresh temporary
    output folder. `extra` overrides any of them. The first call also takes the objects
    alive then out of the garbage collector's scans (``_freeze_long_lived``).
    """
    import tempfile

    from transformers import TrainingArguments

    _freeze_long_lived()

    kw = dict(output_dir=tempfile.mkdtemp(prefix="kdlab-lm-"), max_steps=steps,
              per_device_train_batch_size=batch_size, learning_rate=lr, weight_decay=0.1,
              lr_scheduler_type="cosine", warmup_steps=max(1, steps // 10), max_grad_norm=1.0,
              seed=seed, data_seed=seed, use_cpu=True, report_to=[], logging_strategy="no",
              save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
    kw.update(extra)
    return TrainingArguments(**kw)
