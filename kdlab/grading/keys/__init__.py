"""Answer keys: the right values, and each named mistake's values, on a check's inputs.

Instructor-only, like the rest of ``kdlab.grading``: neither the student release nor the
grading sandbox contains it, so the reference implementations of the exercises (and the
mistakes, one edit away from them) exist only here. One module per lab; in it each key maker
is joined to its check by the check object, ``@key_of(check_<name>)`` (``_table``), never by
its name typed again. ``make`` computes a key, ``write_public`` writes the keys of the
notebooks' own cases into ``kdlab/checks/keys/<name>.json`` (shipped; ``check.key_file``).

    python -m kdlab.authoring make-keys [--check]
"""
from __future__ import annotations

import json
from pathlib import Path

from kdlab.checks import CHECKS
from kdlab.checks._probe import decode, encode
from kdlab.checks._registry import KEY_MAKERS, KEYS_DIR, RNG_LOCK

from . import lab01, lab02, lab03, lab04, lab05, lab06, lab07  # noqa: F401 - they fill KEYS
from ._table import KEYS, key_of  # noqa: F401


def _name(check) -> str:
    """The name of `check` (a Check, or its name as the notebook's metadata gives it)."""
    name = check if isinstance(check, str) else getattr(check, "name", None)
    if name not in KEYS:
        raise KeyError(f"no answer key for check {name!r}; known: {sorted(KEYS)}")
    return name


def make(check, inputs: dict) -> dict:
    """The answer key of `check` (a Check or its name) on `inputs`, as plain decoded data.

    It goes through the same encoding as the shipped keys, so a verdict sees the same types
    (tensors, tuples) whichever way its key came.
    """
    return decode(json.loads(public_text(check, inputs)))


if make not in KEY_MAKERS:  # the instructor's checks in JupyterLab judge any inputs too
    KEY_MAKERS.append(make)


def public_text(check, inputs: dict) -> str:
    """The JSON text of a key (deterministic: the same inputs give the same bytes). Made under
    RNG_LOCK: key makers draw from torch's global generator (see ``_registry.RNG_LOCK``)."""
    with RNG_LOCK:
        return json.dumps(encode(KEYS[_name(check)](inputs)), sort_keys=True, allow_nan=True) + "\n"


def same(a, b, rtol: float = 1e-5, atol: float = 1e-7) -> bool:
    """True when two keys (plain JSON data) agree: the same structure, equal strings and
    integers, floats within a tolerance. A key that trains a step (distill_step) differs in
    the last digits from one CPU to another, as the math library's kernels do."""
    import math

    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool):
            return False
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
    return a == b


def write_public(folder: Path = KEYS_DIR, check: bool = False) -> list:
    """Write keys/<check>.json for every check's notebook cases (seed None, no params).

    A file that agrees with the computed key (``same``) is left as it is. With check=True
    write nothing; return the names whose file is missing or differs.
    """
    folder = Path(folder)
    stale = []
    for name, chk in sorted(CHECKS.items()):
        text = public_text(chk, chk.inputs(None))
        path = folder / chk.key_file.name
        if not path.is_file() or not same(json.loads(path.read_text(encoding="utf-8")),
                                          json.loads(text)):
            stale.append(name)
            if not check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    known = {chk.key_file.name for chk in CHECKS.values()}
    for extra in sorted(p for p in folder.glob("*.json") if p.name not in known):
        stale.append(extra.stem)
        if not check:
            extra.unlink()
    return stale
