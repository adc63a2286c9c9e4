"""Bundled MNIST, offline and verified: in-memory tensors, fast batches, subsets.

The four gzip IDX files ship inside the package (``kdlab/assets/mnist``). Before first
use each one is checked against its sha256; then it is extracted once into a cache
directory (``$KDLAB_CACHE``, default ``~/.cache/kdlab``) in the layout that
``torchvision.datasets.MNIST`` expects, and the real torchvision class reads it. The tensors
it read are kept beside the files (``MNIST/tensors``), so later processes load them without
importing torchvision (~1.6 s of CPU); each load checks them against the files' md5 as
published, and reads the files through torchvision again if they differ. Nothing is ever
downloaded.

Typical use::

    x_train, y_train = kd.data.mnist("train")   # (60000, 1, 28, 28) float32, (60000,) int64
    for x, y, idx in kd.data.Batches(x_train, y_train, batch_size=128, seed=0):
        ...
    kd.data.Steps(kd.data.Batches(x_small, y_small), 300)   # exactly 300 batches, any set size
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import time
from pathlib import Path

import torch

from . import cache
from .cache import cache_dir  # noqa: F401 - kd.data.cache_dir: where the files are extracted

ASSETS = Path(__file__).resolve().parent / "assets" / "mnist"
MEAN, STD = 0.1307, 0.3081  # the usual MNIST normalisation (training-set pixel mean/std)
CLASSES = tuple(range(10))

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 of the uncompressed files, as published with the original data (see PROVENANCE.md)
RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

REPAIR = ("Repair: reinstall the course (`make install`, or `pip install --force-reinstall .`) "
          "or restore the file from git (`git checkout -- kdlab/assets/mnist`).")


class DataError(RuntimeError):
    """The bundled data is missing or corrupted; the message says which file and how to fix it."""


# (file, algorithm) -> (what stat said of the file, its digest): a file is read again only
# if it changed. A change shows in its size, inode or change time, except within the clock's
# tick after it was written: a digest of a file changed in the last seconds is not kept.
_DIGESTS: dict = {}
_SETTLED_NS = 2 * 10 ** 9


def _digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MB chunks (once per process while it is unchanged)."""
    st = os.stat(path)
    key, sig = (os.path.realpath(path), algo), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                                                 st.st_ctime_ns)
    hit = _DIGESTS.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
        _DIGESTS[key] = (sig, h.hexdigest())
    return h.hexdigest()


def expected_sha256(assets: Path = ASSETS) -> dict[str, str]:
    """Read SHA256SUMS: {filename.gz: sha256}."""
    sums = assets / "SHA256SUMS"
    if not sums.exists():
        raise DataError(f"missing checksum list {sums}. {REPAIR}")
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name] = digest
    return out


def verify_file(path: Path, sha256: str, what: str, fix: str, error: type = DataError,
                source: str | None = None) -> None:
    """Check a shipped file against its sha256; raise `error` saying missing or corrupted.

    Inputs: the file's `path`, its expected `sha256` (hex), `what` it is (the message's
    subject), the `fix` to tell the reader, the exception class `error`, and optionally the
    `source` the expected digest was read from (named in the message).
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} missing: {path}. {fix}")
    got = _digest(path)
    if got != sha256:
        origin = f" (from {source})" if source else ""
        raise error(f"{what} corrupted: {path} has sha256 {got}, expected {sha256}{origin}. {fix}")


def verify_archives(assets: Path = ASSETS) -> None:
    """Check every bundled .gz file against SHA256SUMS; raise DataError naming the bad file."""
    for name, digest in expected_sha256(assets).items():
        verify_file(assets / name, digest, "MNIST file", REPAIR)


def _extract(src: Path, dst: Path) -> None:
    """Gunzip src to dst atomically (temp file in the same folder, then rename) and check md5."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name + ".", suffix=".part")
    try:
        md5 = hashlib.md5()
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
            while chunk := inp.read(1 << 20):
                md5.update(chunk)
                out.write(chunk)
        if md5.hexdigest() != RAW_MD5[dst.name]:
            raise DataError(f"{src} decompresses to data with md5 {md5.hexdigest()}, expected "
                            f"{RAW_MD5[dst.name]}. {REPAIR}")
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _raw_ok(path: Path) -> bool:
    return path.exists() and _digest(path, "md5") == RAW_MD5[path.name]


def prepare(root: Path | None = None, assets: Path = ASSETS) -> Path:
    """Verify the bundled archives and extract them for torchvision; return the root folder.

    Files already extracted and intact are kept; a half-written or altered one is replaced.
    Returns: root, such that ``torchvision.datasets.MNIST(root, download=False)`` works.
    """
    root = Path(root) if root is not None else cache_dir()
    verify_archives(assets)
    raw = root / "MNIST" / "raw"
    for names in FILES.values():
        for name in names:
            if not _raw_ok(raw / name):
                _extract(assets / f"{name}.gz", raw / name)
    return root


def _is_file(t: torch.Tensor, name: str) -> bool:
    """True if `t` holds the content of the raw IDX file `name`: its values as uint8, after the
    IDX header its shape gives, have the file's published md5 (``RAW_MD5``)."""
    if t.dtype not in (torch.uint8, torch.int64) or t.dim() not in (1, 3) or t.numel() == 0:
        return False
    if t.dtype != torch.uint8:  # torchvision's labels: int64 of the file's bytes
        if int(t.min()) < 0 or int(t.max()) > 255:
            return False
        t = t.to(torch.uint8)
    h = hashlib.md5(bytes([0, 0, 8, t.dim()]) + b"".join(int(n).to_bytes(4, "big") for n in t.shape))
    h.update(t.contiguous().numpy())
    return h.hexdigest() == RAW_MD5[name]


def _kept(blob, split: str):
    """(data, targets) of a cache file's `blob` if they are the content of the files of
    `split`, else None (missing, unreadable, or not those files)."""
    data, targets = (blob or {}).get("data"), (blob or {}).get("targets")
    if not (torch.is_tensor(data) and torch.is_tensor(targets)):
        return None
    images, labels = FILES[split]
    return (data, targets) if _is_file(data, images) and _is_file(targets, labels) else None


def tensors_file(root: Path, split: str) -> Path:
    """Where ``mnist`` keeps a split's tensors under the cache folder `root`."""
    return Path(root) / "MNIST" / "tensors" / f"{split}.pt"


def keep_tensors(root: Path) -> None:
    """Write the tensors ``mnist`` keeps, both splits, under the cache folder `root` (for a
    read-only cache prepared for other processes: they load these instead of parsing the
    files through torchvision, about 0.1 s against 0.9 s a split)."""
    for split in FILES:
        data, targets = _load_uint8(split)
        cache.write(tensors_file(root, split), {"data": data, "targets": targets})


@functools.lru_cache(maxsize=None)
def _load_uint8(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    root = prepare()
    path = tensors_file(root, split)
    kept = _kept(cache.read(path)[0], split)
    if kept is not None:
        return kept
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=(split == "train"), download=False)
    cache.write(path, {"data": ds.data, "targets": ds.targets})  # nothing in a read-only cache
    return ds.data, ds.targets


def mnist(split: str = "train", normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole MNIST split as tensors, read through torchvision from the bundled files.

    Inputs:
    - split: "train" (60,000 images) or "test" (10,000 images)
    - normalize: if True, (pixel/255 - MEAN) / STD; else pixel/255 in [0, 1]
    Returns:
    - x: (N, 1, 28, 28) float32
    - y: (N,) int64 class labels in 0..9
    """
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data, targets = _load_uint8(split)
    x = data.unsqueeze(1).float().div_(255.0)
    if normalize:
        x = x.sub_(MEAN).div_(STD)
    return x, targets.clone()


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation for display: x (..., 28, 28) -> pixels in [0, 1]."""
    return (x * STD + MEAN).clamp(0, 1)


def balanced_indices(labels: torch.Tensor, n_per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of a class-balanced random subset with n_per_class examples of each class.

    Inputs: labels (N,) int64; n_per_class > 0; seed for the choice.
    Returns: (n_per_class * C,) int64 indices, sorted.
    """
    if n_per_class <= 0:
        raise ValueError(f"n_per_class must be positive, got {n_per_class}")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, asked for {n_per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:n_per_class]])
    return torch.cat(picks).sort().values


def indices_without(labels: torch.Tensor, classes) -> torch.Tensor:
    """Indices of the examples whose label is not in `classes` (e.g. omit every 3).

    Inputs: labels (N,) int64; classes: an int or an iterable of ints.
    Returns: (M,) int64 indices, sorted.
    """
    classes = [classes] if isinstance(classes, int) else list(classes)
    keep = ~torch.isin(labels, torch.tensor(classes, dtype=labels.dtype))
    return keep.nonzero().flatten()


class Batches:
    """Mini-batches of in-memory tensors by index: iterating yields (x, y, idx).

    Inputs:
    - x: (N, ...) inputs; y: (N,) labels
    - batch_size: examples per batch
    - shuffle: reshuffle every epoch; the order depends only on (seed, epoch), so two
      runs with the same seed see the same data in the same order
    - seed: seed of the shuffling
    Yields: x[idx] (B, ...), y[idx] (B,), idx (B,) int64 positions in x (e.g. to look up
    cached teacher logits).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128,
                 shuffle: bool = True, seed: int = 0):
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: x {tuple(x.shape)}, y {tuple(y.shape)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        self.epoch += 1
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx], idx



class Steps:
    """A fixed number of mini-batches from `batches`, over as many epochs as that takes.

    Inputs: batches: e.g. ``Batches`` (each pass over it is one epoch, reshuffled by its own
    seed); steps: how many batches to yield in all. Iterating yields the batches of `batches`
    unchanged ((x, y, idx) for ``Batches``), `steps` of them; ``len`` is `steps`. Use it with
    ``kd.train.fit(model, Steps(batches, 300), loss_fn, epochs=1)`` to give runs on data sets
    of different sizes the same number of optimizer steps.
    """

    def __init__(self, batches, steps: int):
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if hasattr(batches, "__len__") and len(batches) == 0:
            raise ValueError("batches is empty: no step to take")
        self.batches, self.steps = batches, int(steps)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        n = 0
        while True:
            for batch in self.batches:
                yield batch
                n += 1
                if n >= self.steps:
                    return
