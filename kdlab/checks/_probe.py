"""The probe side of the checks: call the student's object and return plain data only.

A check is a *probe* and a *verdict* (see ``_registry``). The probe runs where the student's
code runs (the notebook's kernel, in grading a sandboxed one): it calls the student's object on
given inputs and records what happened as plain data (dicts, lists, str, int, float, bool,
None): returned values as float64 lists with dtype and shape, raised exception types,
gradients, whether the inputs were changed. The verdict reads only that data, so nothing the
student's code patches or returns (a patched ``torch.allclose``, a tensor subclass that lies)
can do more than produce numbers, and only correct numbers pass.

Every call of student code goes through ``call``, which also records calls into the course's
reference implementations (``kdlab.losses``, ``kdlab.compress``, ``kdlab.checks``) made while
it runs.
"""
from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

MIME = "application/vnd.kdlab.probe+json"
_KDLAB = Path(__file__).resolve().parent.parent
# code in these files is the course's reference implementations; student code may not call it
_REFERENCE_FILES = (str(_KDLAB / "losses.py"), str(_KDLAB / "compress.py"), str(_KDLAB / "checks"))
REFERENCE_MODULES = ("kdlab.losses", "kdlab.compress", "kdlab.checks")
MAX_TEXT = 500  # characters kept of an exception message or a repr


def _is_reference_code(filename: str) -> bool:
    if filename == __file__ or filename == str(Path(__file__).resolve()):
        return False  # this module's own machinery
    return any(filename == f or filename.startswith(f + "/") for f in _REFERENCE_FILES)


@contextmanager
def _watch_reference_calls(found: list):
    """Record (module, function) of every Python call into reference code while active."""
    previous = sys.getprofile()

    def hook(frame, event, arg):
        if event == "call" and _is_reference_code(frame.f_code.co_filename):
            where = (frame.f_globals.get("__name__", "?"), frame.f_code.co_name)
            if where not in found:
                found.append(where)

    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(previous)


def provenance(obj) -> list:
    """[(module, name)] if `obj` itself is (or wraps) a course reference implementation."""
    out = []
    seen = set()
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        mod = getattr(o, "__module__", None)
        name = getattr(o, "__qualname__", getattr(o, "__name__", type(o).__name__))
        code = getattr(o, "__code__", None)
        if isinstance(mod, str) and any(mod == m or mod.startswith(m + ".") for m in REFERENCE_MODULES):
            out.append((mod, str(name)))
        elif code is not None and _is_reference_code(code.co_filename):
            out.append((mod or "?", str(name)))
        for attr in ("func", "__wrapped__", "__func__"):  # functools.partial, wraps, methods
            inner = getattr(o, attr, None)
            if inner is not None:
                stack.append(inner)
    return out


def text(s, limit: int = MAX_TEXT) -> str:
    """A string cut to `limit` characters (for exception messages and reprs)."""
    s = str(s)
    return s if len(s) <= limit else s[:limit] + " ..."


def tensor(t) -> dict:
    """Plain data of a tensor: dtype, shape, requires_grad, values (float64 list, flattened).

    Reads the tensor's own storage with torch functions disabled, so a subclass's
    ``__torch_function__`` cannot change what is recorded.
    """
    with torch._C.DisableTorchFunction():
        base = torch.Tensor.detach(t)
        dtype = str(base.dtype).replace("torch.", "")
        shape = list(base.shape)
        if base.is_complex():
            base = torch.view_as_real(base)
        vals = base.to("cpu", torch.float64).reshape(-1).tolist() if base.numel() <= 1_000_000 else []
        return {"kind": "tensor", "dtype": dtype, "shape": shape, "values": vals,
                "requires_grad": bool(t.requires_grad), "subclass": type(t).__name__
                if type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter) else ""}


def value(x) -> dict:
    """Plain data of any value a student's function may return."""
    if torch.is_tensor(x):
        return tensor(x)
    if isinstance(x, bool):
        return {"kind": "bool", "value": x}
    if isinstance(x, (int, float)):
        return {"kind": "number", "value": float(x), "type": type(x).__name__}
    if x is None:
        return {"kind": "none"}
    if isinstance(x, (tuple, list)) and len(x) <= 16:
        return {"kind": type(x).__name__, "items": [value(v) for v in x]}
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        r = "?"
    return {"kind": "other", "type": type(x).__name__, "repr": text(r, 200)}


def call(fn, *args, **kwargs) -> tuple[dict, object]:
    """Call student code; return (plain outcome, the raw result or None).

    outcome: {"callable": bool, "raised": None | {"type", "message", "bases"}, "value":
    value(result), "reference_calls": [[module, function], ...], "changed": [[argument
    index, what], ...]} where "changed" lists the tensor arguments the call modified (their
    values, requires_grad flag or .grad). The raw result is for the probe's own further use
    (autograd, calling a returned module); it never reaches a verdict.
    """
    out = {"callable": callable(fn), "raised": None, "value": {"kind": "none"},
           "reference_calls": []}
    if not callable(fn):
        out["type"] = type(fn).__name__
        return out, None
    found = []
    result = None
    before = [(i, a, snapshot(a)) for i, a in enumerate(args) if torch.is_tensor(a)]
    try:
        with _watch_reference_calls(found):
            result = fn(*args, **kwargs)
        out["value"] = value(result)
    except Exception as e:  # noqa: BLE001 - the student's code may raise anything
        out["raised"] = {"type": type(e).__name__, "message": text(e),
                         "bases": [c.__name__ for c in type(e).__mro__]}
    out["reference_calls"] = [list(w) for w in found]
    out["changed"] = [[i, w] for i, a, snap in before for w in changes(snap, a)]
    return out, result


def grads(outputs, inputs) -> list:
    """Gradients of the scalar tensor `outputs` w.r.t. each of `inputs` (None if unused)."""
    try:
        gs = torch.autograd.grad(outputs, inputs, allow_unused=True)
    except Exception as e:  # noqa: BLE001 - a graph the student broke
        return [{"kind": "error", "type": type(e).__name__, "message": text(e)}] * len(inputs)
    return [tensor(g) if g is not None else {"kind": "none"} for g in gs]


def snapshot(t: torch.Tensor) -> dict:
    """What a check needs to see whether student code changed an input tensor: a copy."""
    return {"values": t.detach().clone(), "requires_grad": t.requires_grad, "grad": t.grad}


def changes(before: dict, t: torch.Tensor) -> list:
    """How student code changed an input tensor since `snapshot`: a list of words."""
    out = []
    now = t.detach()
    if now.shape != before["values"].shape or not torch.equal(now, before["values"]):
        out.append("values")
    if t.requires_grad != before["requires_grad"]:
        out.append("requires_grad")
    if t.grad is not before["grad"]:
        out.append("grad")
    return out


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def to_json(data) -> str:
    """The JSON text of probe data (nan and inf allowed)."""
    return json.dumps(data, allow_nan=True)


def from_json(text_: str):
    """Plain data back from JSON text."""
    return json.loads(text_)
