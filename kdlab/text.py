"""Bundled Tiny Shakespeare, offline and verified: characters, a fixed split, batches (Lab 07).

The text (1,115,394 characters) ships inside the package (``kdlab/assets/text``) and is
checked against its sha256 before its first use in a process. Nothing is ever downloaded.

Typical use::

    vocab = kd.text.vocab()                      # 65 symbols, sorted; vocab.encode / decode
    train_ids = kd.text.ids("train")             # (1,003,854,) int64: the first 90%
    val_ids = kd.text.ids("val")                 # (111,540,) int64: the last 10%
    small = kd.text.head(train_ids, 0.02)        # the first 2% of the training text
    for x in kd.text.windows(small, block=128, batch_size=32, steps=100, seed=0):
        ...                                      # x (32, 128) int64, random windows
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .data import verify_file

ASSETS = Path(__file__).resolve().parent / "assets" / "text"
FILE = "tinyshakespeare.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
N_CHARS = 1_115_394
TRAIN_FRACTION = 0.9
SPLITS = ("train", "val")
REPAIR = ("Repair: reinstall the course (`make install`, or `pip install --force-reinstall .`) "
          "or restore the file from git (`git checkout -- kdlab/assets/text`).")


def verify(path: Path = ASSETS / FILE, sha256: str = SHA256) -> None:
    """Check the bundled text against its sha256; raise DataError saying what is wrong."""
    verify_file(path, sha256, "Tiny Shakespeare", REPAIR)


@functools.lru_cache(maxsize=None)
def raw() -> str:
    """The whole text (1,115,394 characters), after checking its sha256."""
    verify()
    return (ASSETS / FILE).read_text(encoding="utf-8")


class Vocab:
    """A character vocabulary: symbol i is ``chars[i]`` (sorted, so the ids never change).

    encode(str) -> (L,) int64 ids; decode(ids) -> str (ids: a sequence or a 1-D tensor).
    """

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary's characters must be distinct")
        self.chars = "".join(sorted(chars))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> torch.Tensor:
        unknown = sorted(set(s) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]}; it has only "
                             f"the {len(self)} symbols of Tiny Shakespeare")
        return torch.tensor([self.index[c] for c in s], dtype=torch.long)

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.flatten().tolist()
        return "".join(self.chars[int(i)] for i in ids)


@functools.lru_cache(maxsize=None)
def vocab() -> Vocab:
    """The 65-symbol vocabulary of the whole text (both splits)."""
    return Vocab("".join(set(raw())))


@functools.lru_cache(maxsize=None)
def _all_ids() -> torch.Tensor:
    v = vocab()
    return torch.tensor([v.index[c] for c in raw()], dtype=torch.long)


def ids(split: str = "train") -> torch.Tensor:
    """The ids of one split: "train" the first 90% of the text, "val" the last 10%.

    Returns: (L,) int64 (a copy: changing it changes nothing here).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    allids = _all_ids()
    cut = int(TRAIN_FRACTION * len(allids))
    return (allids[:cut] if split == "train" else allids[cut:]).clone()


def head(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The first `fraction` (0 < fraction <= 1) of the ids x (L,): a small, contiguous slice."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return x[: max(2, int(round(fraction * len(x))))]


def windows(x: torch.Tensor, block: int, batch_size: int, steps: int, seed: int = 0):
    """`steps` batches of random windows of `block` consecutive ids of x (L,).

    The start positions depend only on `seed`: two runs with the same seed see the same text
    in the same order. Yields: (batch_size, block) int64. A model learns to predict each
    window's characters from those before them (the labels are the window itself, shifted
    inside the model).
    """
    if block < 2 or len(x) < block:
        raise ValueError(f"block must be in [2, {len(x)}] for a text of {len(x)} ids, got {block}")
    g = torch.Generator().manual_seed(seed)
    offsets = torch.arange(block)
    for _ in range(steps):
        starts = torch.randint(0, len(x) - block + 1, (batch_size,), generator=g)
        yield x[starts[:, None] + offsets]


def chunks(x: torch.Tensor, block: int, max_chars: int | None = None) -> torch.Tensor:
    """x (L,) cut into consecutive, non-overlapping windows: (L // block, block) int64.

    With max_chars only the first max_chars ids are used (an evaluation's budget).
    """
    if max_chars is not None:
        x = x[:max_chars]
    n = len(x) // block
    if n == 0:
        raise ValueError(f"{len(x)} ids make no window of {block}")
    return x[: n * block].view(n, block)
