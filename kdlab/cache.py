"""The kdlab disk cache: files of tensors computed once (teacher logits, trained models).

Every file lives under the cache folder (``cache_dir()``: ``$KDLAB_CACHE``, default
``~/.cache/kdlab``), in one sub-folder per kind. A file holds a dict of tensors and plain
values with a ``digest`` of its tensors; it is written atomically (a temporary file in the
same folder, then a rename), and a file that is unreadable, made for other inputs or whose
tensors fail their digest is reported and made again by its owner. Users:
``kd.teacher.fetch_logits`` (the teacher's logits), ``train_once`` (a model trained once) and
``kd.data.mnist`` (the tensors torchvision read; the extracted MNIST files live there too).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .runtime import quick

MODELS_FOLDER = "models"


def cache_dir() -> Path:
    """Where the uncompressed files live: ``$KDLAB_CACHE`` or ``~/.cache/kdlab``."""
    return Path(os.environ.get("KDLAB_CACHE", Path.home() / ".cache" / "kdlab"))


def path(folder: str, name: str) -> Path:
    """The cache file `name` of the kind `folder`: <cache>/<folder>/<name>."""
    return cache_dir() / folder / name


def digest(tensors) -> str:
    """sha256 of a tensor's values, or of a {name: tensor} dict's names, shapes, dtypes and values.

    Inputs: a tensor (any shape; its bytes in memory order) or a state dict.
    Returns: 64 hex digits.
    """
    h = hashlib.sha256()
    if torch.is_tensor(tensors):
        h.update(tensors.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
    for k, v in tensors.items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def unreadable(e: BaseException) -> str:
    """Why a cache file could not be used, from the exception its reading raised."""
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return f"unreadable ({type(e).__name__}: {first})" if first else f"unreadable ({type(e).__name__})"


def read(file: Path) -> tuple:
    """(blob, "") with the dict stored in `file`, or (None, why not) for a missing or unreadable file."""
    file = Path(file)
    if not file.exists():
        return None, "no cache file yet"
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or overwritten file
        return None, unreadable(e)
    if not isinstance(blob, dict):
        return None, f"not a kdlab cache file (holds a {type(blob).__name__})"
    return blob, ""


def write(file: Path, blob: dict) -> str:
    """Save `blob` to `file` atomically; return where it went, for the caller's message.

    Returns "saved to <file>", or "not saved (<error>); set KDLAB_CACHE to a writable folder"
    when the folder cannot be written (a read-only home): the caller still has its result.
    """
    file = Path(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp{os.getpid()}")
        torch.save(blob, tmp)
        os.replace(tmp, file)
        return f"saved to {file}"
    except OSError as e:
        return f"not saved ({e}); set KDLAB_CACHE to a writable folder"


def train_once(name: str, recipe: dict, make, train_fn, verbose: bool = True):
    """A model trained once, then read from the kdlab cache folder on later runs.

    Inputs:
    - name: the start of the cache file's name, e.g. "lab05-dense-seed0"
    - recipe: a JSON-serialisable dict of everything that decides the trained weights (data,
      epochs, learning rate, seed, ...); the file is keyed by its hash and the torch version,
      so a changed recipe trains a new model
    - make: ``make() -> nn.Module``, a fresh untrained model
    - train_fn: ``train_fn(model) -> dict or None`` trains the model in place; a dict it
      returns (JSON-serialisable, e.g. the test errors per epoch) is kept with the weights
    - verbose: print where the model came from
    Returns: (model, info): the trained model in eval mode; info = {"source": "cache" or
    "trained", "seconds": training time (0 when read), "path": the cache file, "extra": what
    train_fn returned}.

    The file lives in ``<cache>/models/`` (``$KDLAB_CACHE``, default ``~/.cache/kdlab``) and
    holds the recipe, the state dict and its digest; an unreadable, mismatched or corrupted
    file is reported and the model retrained. Under the quick budget nothing is read or
    written: the model is always trained (the tests stay free of side effects).
    """
    key = json.dumps({"name": name, "recipe": recipe, "torch": torch.__version__}, sort_keys=True)
    file = path(MODELS_FOLDER, f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt")
    model = make()
    if not quick() and file.exists():
        blob, why = read(file)
        if blob is not None:
            try:
                if blob.get("key") != key:
                    why = "made by another recipe"
                elif blob.get("digest") != digest(blob["state"]):
                    why = "its weights do not match their recorded digest (corrupted)"
                else:
                    model.load_state_dict(blob["state"])
                    extra = json.loads(blob.get("extra", "null"))
                    if verbose:
                        print(f"{name}: read from the cache {file}")
                    return model.eval(), {"source": "cache", "seconds": 0.0, "path": str(file),
                                          "extra": extra}
            except Exception as e:  # noqa: BLE001 - wrong architecture, missing entries, ...
                why = unreadable(e)
        if verbose:
            print(f"{name}: the cache file {file} is not usable: {why}; training again")
    t0 = time.perf_counter()
    extra = train_fn(model)
    seconds = time.perf_counter() - t0
    where = "not cached (quick budget)"
    if not quick():
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        where = write(file, {"key": key, "state": state, "digest": digest(state),
                             "extra": json.dumps(extra)})
    if verbose:
        print(f"{name}: trained in {seconds:.1f} s, {where}")
    return model.eval(), {"source": "trained", "seconds": seconds, "path": str(file),
                          "extra": extra}
